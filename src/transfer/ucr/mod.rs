//! Real classification data (UCR/UEA): the `.ts` reader, preprocessing and the validation
//! split.

mod prepare;
mod split;
mod ts;

pub use prepare::{prepare, Prepared};
pub use split::{stratified_folds, stratified_split};
pub use ts::{dataset_digest, TsDataset};
