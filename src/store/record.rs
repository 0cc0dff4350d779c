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

/// Why candidates were rejected before a sample was accepted (or its budget ran out), by
/// reason; summed per shard in the manifest, so users tuning a preset see what it throws
/// away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Rejections {
    /// An input channel could not be z-scored (its excitation was constant or not finite).
    pub constant_input: u64,
    /// An output was NaN or infinite.
    pub non_finite: u64,
    /// An output left ±max_abs.
    pub out_of_bounds: u64,
    /// An output was nearly constant.
    pub near_constant: u64,
    /// An explicit output amplified a tiny input perturbation beyond max_condition.
    pub ill_conditioned: u64,
    /// An ODE integration was abandoned: the state diverged, the step size underflowed (stiff
    /// or singular), or the step budget ran out (dynamics faster than the grid).
    pub ode_diverged: u64,
    pub ode_step_underflow: u64,
    pub ode_too_many_steps: u64,
}

impl Rejections {
    pub fn total(&self) -> u64 {
        self.named().iter().map(|(_, n)| n).sum()
    }

    pub fn add(&mut self, other: &Rejections) {
        let o = other;
        self.constant_input += o.constant_input;
        self.non_finite += o.non_finite;
        self.out_of_bounds += o.out_of_bounds;
        self.near_constant += o.near_constant;
        self.ill_conditioned += o.ill_conditioned;
        self.ode_diverged += o.ode_diverged;
        self.ode_step_underflow += o.ode_step_underflow;
        self.ode_too_many_steps += o.ode_too_many_steps;
    }

    /// (name, count) of every reason, in a fixed order.
    pub fn named(&self) -> [(&'static str, u64); 8] {
        [
            ("constant_input", self.constant_input),
            ("non_finite", self.non_finite),
            ("out_of_bounds", self.out_of_bounds),
            ("near_constant", self.near_constant),
            ("ill_conditioned", self.ill_conditioned),
            ("ode_diverged", self.ode_diverged),
            ("ode_step_underflow", self.ode_step_underflow),
            ("ode_too_many_steps", self.ode_too_many_steps),
        ]
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

/// A sample with the candidates rejected before it, or the record that its attempt budget
/// ran out.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Accepted(Sample, Rejections),
    Failed { id: u64, rejections: Rejections },
}
