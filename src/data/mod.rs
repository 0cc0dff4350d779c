//! Real classification data: the `.ts` reader, preprocessing and the validation split.

mod prepare;
mod split;
mod ts;

pub use prepare::{fill_missing, prepare, resample, z_normalize, Prepared};
pub use split::stratified_split;
pub use ts::{parse_ts, read_ts, TsDataset, TsSplit};
