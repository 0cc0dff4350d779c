//! The record the store persists: one generated sample, its kind, and the outcome of its
//! attempt budget. It sits beneath both the generator that makes records and the shards
//! that hold them.

/// What produced a sample's outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SampleKind {
    /// y = f(x)
    Explicit = 0,
    /// dy/dt = f(y, x, t)
    Ode = 1,
}

impl SampleKind {
    /// The kind stored as `code` in a shard's `kind` dataset.
    pub fn from_code(code: u8) -> Option<SampleKind> {
        match code {
            0 => Some(SampleKind::Explicit),
            1 => Some(SampleKind::Ode),
            _ => None,
        }
    }

    /// The name used in `inspect` reports.
    pub fn name(self) -> &'static str {
        match self {
            SampleKind::Explicit => "explicit",
            SampleKind::Ode => "ode",
        }
    }
}

/// `ode_system` value of explicit samples.
pub const NOT_ODE: u8 = 255;

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub id: u64,
    pub kind: SampleKind,
    /// 0 = random right-hand side, 1.. = catalogue system, [`NOT_ODE`] for explicit samples.
    pub ode_system: u8,
    /// [input channel][t], exactly the values the outputs were computed from.
    pub inputs: Vec<Vec<f32>>,
    /// Excitation method code of each input channel.
    pub input_methods: Vec<u8>,
    /// [output channel][t], raw (not normalised).
    pub outputs: Vec<Vec<f32>>,
    /// The infix expression of each output channel.
    pub symbols: Vec<String>,
    /// Candidates rejected before this one was accepted.
    pub rejected: u32,
}

/// A sample, or the record that its attempt budget ran out.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Accepted(Sample),
    Failed { id: u64, rejected: u32 },
}
