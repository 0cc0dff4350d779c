//! `s2kit embed`: the frozen features the linear probe uses, written for any classifier.
//! The file is HDF5 with these datasets (h5py or any HDF5 reader; no custom code):
//!
//! - `train_features` [n_train, features] f32, `train_labels` [n_train] i64,
//! - `test_features` [n_test, features] f32, `test_labels` [n_test] i64,
//! - `train_levels` [n_train, 2·channels] f32 and `test_levels`: each channel's mean and log
//!   standard deviation before z-normalisation, in channel order (what `--levels` adds),
//! - `class_names` [classes] strings (label i is `class_names[i]`),
//!
//! and attributes `dataset`, `model`, `layer` (0 for the default), `native` (1 when series were
//! read at their own length) and `length` (what every series was resampled to: the encoder's
//! window, or the longest TRAIN case). Features are raw: standardise them on TRAIN yourself.

use super::{frozen_features, ModelSpec, Prepared, PreparedSet, Readout, TRANSFER_STREAM};
use crate::checks::check_output_file;
use crate::error::{Error, Result};
use crate::rng::sample_rng;
use candle_core::Device;
use hdf5::types::VarLenUnicode;
use std::path::{Path, PathBuf};

pub struct EmbedRequest {
    pub dataset: PathBuf,
    pub model: ModelSpec,
    /// The encoder layer to read (1-based; `None`: the last).
    pub layer: Option<usize>,
    /// Read each series at its own length instead of resampled to the encoder's window.
    pub native: bool,
    /// MiniRocket's seed (an encoder's features do not depend on it).
    pub seed: u64,
    pub device: Device,
}

/// TRAIN and TEST features with their labels.
pub struct Embedding {
    pub dataset: String,
    pub model: String,
    pub layer: Option<usize>,
    pub native: bool,
    pub length: usize,
    pub class_names: Vec<String>,
    pub train: EmbeddedSplit,
    pub test: EmbeddedSplit,
}

pub struct EmbeddedSplit {
    pub features: Vec<Vec<f32>>,
    /// [n][2·channels]: each channel's mean and log standard deviation.
    pub levels: Vec<Vec<f32>>,
    pub labels: Vec<usize>,
}

impl EmbeddedSplit {
    fn new(features: Vec<Vec<f32>>, cases: Prepared) -> EmbeddedSplit {
        EmbeddedSplit {
            features,
            levels: cases.case_levels().map(<[f32]>::to_vec).collect(),
            labels: cases.labels,
        }
    }
}

/// Computes the features of `req.dataset`'s TRAIN and TEST cases.
pub fn embed(req: &EmbedRequest) -> Result<Embedding> {
    let PreparedSet {
        dataset,
        encoder_cfg,
        length,
        train,
        test,
    } = PreparedSet::load(&req.dataset, &req.model, req.native)?;
    let mut rng = sample_rng(req.seed, TRANSFER_STREAM);
    let (train_f, test_f) = frozen_features(
        &req.model,
        encoder_cfg.as_ref(),
        Readout {
            layer: req.layer,
            native: req.native,
        },
        [&train, &test],
        &mut rng,
        &req.device,
    )?;
    Ok(Embedding {
        dataset: dataset.name.clone(),
        model: req.model.label(),
        layer: req.layer,
        native: req.native,
        length,
        class_names: dataset.train.class_names.clone(),
        train: EmbeddedSplit::new(train_f, train),
        test: EmbeddedSplit::new(test_f, test),
    })
}

impl Embedding {
    /// Writes the HDF5 file described above. An existing file is kept unless `overwrite`.
    pub fn write(&self, path: &Path, overwrite: bool) -> Result<()> {
        check_output_file(path, overwrite)?;
        let h5 = |e: hdf5::Error| Error::hdf5(path, e);
        let file = hdf5::File::create(path).map_err(h5)?;
        for (name, split) in [("train", &self.train), ("test", &self.test)] {
            for (what, rows) in [("features", &split.features), ("levels", &split.levels)] {
                let width = rows.first().map_or(0, Vec::len);
                let flat: Vec<f32> = rows.iter().flatten().copied().collect();
                file.new_dataset::<f32>()
                    .shape((rows.len(), width))
                    .create(format!("{name}_{what}").as_str())
                    .and_then(|d| d.write_raw(&flat))
                    .map_err(h5)?;
            }
            let labels: Vec<i64> = split.labels.iter().map(|&l| l as i64).collect();
            file.new_dataset_builder()
                .with_data(&labels)
                .create(format!("{name}_labels").as_str())
                .map_err(h5)?;
        }
        let text = |s: &str| -> Result<VarLenUnicode> {
            s.parse().map_err(|e| {
                Error::Other(format!("{}: '{s}' is not storable: {e}", path.display()))
            })
        };
        let names: Vec<VarLenUnicode> = self
            .class_names
            .iter()
            .map(|n| text(n))
            .collect::<Result<_>>()?;
        file.new_dataset_builder()
            .with_data(&names)
            .create("class_names")
            .map_err(h5)?;
        for (name, value) in [
            ("dataset", text(&self.dataset)?),
            ("model", text(&self.model)?),
        ] {
            file.new_attr::<VarLenUnicode>()
                .create(name)
                .and_then(|a| a.write_scalar(&value))
                .map_err(h5)?;
        }
        for (name, value) in [
            ("layer", self.layer.unwrap_or(0) as u64),
            ("native", u64::from(self.native)),
            ("length", self.length as u64),
        ] {
            file.new_attr::<u64>()
                .create(name)
                .and_then(|a| a.write_scalar(&value))
                .map_err(h5)?;
        }
        file.flush().map_err(h5)
    }
}
