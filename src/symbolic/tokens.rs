//! The symbol tokenizer: printed expressions to token ids and back, offline and
//! self-contained (the reference downloads a WordPiece vocabulary from a hub instead).
//!
//! Tokens: specials `[PAD] [CLS] [SEP] [MASK]`; operators `+ - * / ^`; parentheses; functions
//! `abs sqrt ln exp sin cos tan atan`; variables `x0..x5`, `y0..y5`, `t`; and numbers as a
//! sign token, four significant digits and a decimal exponent (`N+ 1 2 5 0 E-1` is 0.125):
//! every magnitude from 1e-9 to 9.999e9 has a token sequence, unlike the reference's encoder,
//! which maps every |v| < 1 to 0. Negative constants, printed `(-0.25)`, become `N-` numbers.

use crate::error::{Error, Result};

pub const PAD: u32 = 0;
pub const CLS: u32 = 1;
pub const SEP: u32 = 2;
pub const MASK: u32 = 3;

const SPECIALS: [&str; 4] = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"];
const SYMBOLS: [&str; 7] = ["+", "-", "*", "/", "^", "(", ")"];
const FUNCTIONS: [&str; 8] = ["abs", "sqrt", "ln", "exp", "sin", "cos", "tan", "atan"];
const VARIABLES: [&str; 13] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "y0", "y1", "y2", "y3", "y4", "y5", "t",
];
const SIGNS: [&str; 2] = ["N+", "N-"];
const DIGITS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const MIN_EXP: i32 = -9;
const MAX_EXP: i32 = 9;
const MANTISSA_DIGITS: usize = 4;

/// The vocabulary, in id order.
pub fn vocabulary() -> Vec<String> {
    let mut v: Vec<String> = SPECIALS
        .iter()
        .chain(&SYMBOLS)
        .chain(&FUNCTIONS)
        .chain(&VARIABLES)
        .chain(&SIGNS)
        .chain(&DIGITS)
        .map(|s| s.to_string())
        .collect();
    v.extend((MIN_EXP..=MAX_EXP).map(|e| format!("E{e:+}")));
    v
}

pub fn vocab_size() -> usize {
    vocabulary().len()
}

/// Ids of the tokens that may replace a masked one (everything but the specials).
pub fn first_regular_id() -> u32 {
    SPECIALS.len() as u32
}

pub struct Tokenizer {
    vocab: Vec<String>,
}

impl Default for Tokenizer {
    fn default() -> Self {
        Tokenizer {
            vocab: vocabulary(),
        }
    }
}

fn bad(symbol: &str, message: String) -> Error {
    Error::Other(format!("cannot tokenize '{symbol}': {message}"))
}

impl Tokenizer {
    fn id(&self, token: &str) -> u32 {
        self.vocab
            .iter()
            .position(|t| t == token)
            .expect("token in vocabulary") as u32
    }

    /// Sign, four significant digits (rounded), exponent.
    fn push_number(&self, value: f64, negative: bool, out: &mut Vec<u32>) {
        out.push(self.id(if negative { "N-" } else { "N+" }));
        let (digits, exp) = if value == 0.0 {
            ([0u8; MANTISSA_DIGITS], 0)
        } else {
            let mut exp = value.abs().log10().floor() as i32;
            let mut scaled =
                (value.abs() / 10f64.powi(exp - MANTISSA_DIGITS as i32 + 1)).round() as u64;
            if scaled >= 10u64.pow(MANTISSA_DIGITS as u32) {
                scaled /= 10;
                exp += 1;
            }
            let exp = exp.clamp(MIN_EXP, MAX_EXP);
            let mut d = [0u8; MANTISSA_DIGITS];
            for (i, slot) in d.iter_mut().enumerate() {
                *slot = ((scaled / 10u64.pow((MANTISSA_DIGITS - 1 - i) as u32)) % 10) as u8;
            }
            (d, exp)
        };
        out.extend(digits.iter().map(|d| self.id(DIGITS[*d as usize])));
        out.push(self.id(&format!("E{exp:+}")));
    }

    /// `[CLS] tokens [SEP]`, cut to at most `max_len` ids (the last kept id is `[SEP]`).
    pub fn encode(&self, symbol: &str, max_len: usize) -> Result<Vec<u32>> {
        let mut out = vec![CLS];
        let chars: Vec<char> = symbol.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c.is_whitespace() {
                i += 1;
            } else if c == '('
                && chars.get(i + 1) == Some(&'-')
                && chars.get(i + 2).is_some_and(|d| d.is_ascii_digit())
            {
                // "(-number)" is a negative constant.
                let start = i + 2;
                let mut end = start;
                while end < chars.len() && (chars[end].is_ascii_digit() || chars[end] == '.') {
                    end += 1;
                }
                if chars.get(end) != Some(&')') {
                    return Err(bad(symbol, format!("unclosed negative constant at {i}")));
                }
                let text: String = chars[start..end].iter().collect();
                let v: f64 = text
                    .parse()
                    .map_err(|_| bad(symbol, format!("bad number '{text}'")))?;
                self.push_number(v, true, &mut out);
                i = end + 1;
            } else if c.is_ascii_digit() || c == '.' {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                let v: f64 = text
                    .parse()
                    .map_err(|_| bad(symbol, format!("bad number '{text}'")))?;
                self.push_number(v, false, &mut out);
            } else if c.is_ascii_alphabetic() {
                let start = i;
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if !FUNCTIONS.contains(&word.as_str()) && !VARIABLES.contains(&word.as_str()) {
                    return Err(bad(symbol, format!("unknown name '{word}'")));
                }
                out.push(self.id(&word));
            } else if SYMBOLS.contains(&c.to_string().as_str()) {
                out.push(self.id(&c.to_string()));
                i += 1;
            } else {
                return Err(bad(symbol, format!("unexpected character '{c}'")));
            }
        }
        out.truncate(max_len.max(2) - 1);
        out.push(SEP);
        Ok(out)
    }

    /// Back to the printed form (numbers with at most four significant digits).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut text = String::new();
        let mut i = 0;
        while i < ids.len() {
            let token = self
                .vocab
                .get(ids[i] as usize)
                .map(String::as_str)
                .unwrap_or("[?]");
            match token {
                "[PAD]" | "[CLS]" | "[SEP]" => i += 1,
                "N+" | "N-" if i + MANTISSA_DIGITS + 1 < ids.len() + 1 => {
                    let digits: String = ids[i + 1..i + 1 + MANTISSA_DIGITS]
                        .iter()
                        .map(|d| self.vocab[*d as usize].as_str())
                        .collect();
                    let exp: i32 = self.vocab[ids[i + 1 + MANTISSA_DIGITS] as usize][1..]
                        .parse()
                        .unwrap_or(0);
                    let mantissa: f64 = digits.parse::<f64>().unwrap_or(0.0);
                    let text_value = format!("{mantissa}e{}", exp - MANTISSA_DIGITS as i32 + 1);
                    let value: f64 = text_value.parse().unwrap_or(0.0);
                    if token == "N-" {
                        text.push_str(&format!("(-{value})"));
                    } else {
                        text.push_str(&format!("{value}"));
                    }
                    i += MANTISSA_DIGITS + 2;
                }
                "+" | "-" | "*" | "/" => {
                    text.push_str(&format!(" {token} "));
                    i += 1;
                }
                other => {
                    text.push_str(other);
                    i += 1;
                }
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbolic::{BinaryOp, Expr, UnaryOp};

    #[test]
    fn every_operator_round_trips() {
        let tok = Tokenizer::default();
        let x = || {
            Expr::plus(
                Expr::constant(-0.25),
                Expr::times(Expr::constant(3.5), Expr::input(1)),
            )
        };
        let mut exprs: Vec<Expr> = UnaryOp::ALL
            .iter()
            .map(|op| Expr::unary(*op, x()))
            .collect();
        exprs.extend(
            BinaryOp::ALL
                .iter()
                .map(|op| Expr::binary(*op, x(), Expr::constant(12.0))),
        );
        exprs.push(Expr::minus(
            Expr::times(Expr::constant(0.001), Expr::state(2)),
            Expr::time(),
        ));
        for e in exprs {
            let printed = e.to_string();
            let ids = tok.encode(&printed, 512).unwrap();
            assert_eq!((ids[0], *ids.last().unwrap()), (CLS, SEP));
            assert_eq!(tok.decode(&ids), printed, "{printed}");
        }
    }

    #[test]
    fn numbers_keep_four_significant_digits_across_magnitudes() {
        let tok = Tokenizer::default();
        for (text, back) in [
            ("0.000123", "0.000123"),
            ("98765", "98770"),
            ("2.718281828459045", "2.718"),
            ("0", "0"),
            ("9.9996", "10"),
        ] {
            let ids = tok.encode(text, 64).unwrap();
            assert_eq!(tok.decode(&ids), back, "{text}");
        }
    }

    #[test]
    fn generated_symbols_round_trip_exactly() {
        // Default prefactors have three digits and integer leaves are small, so apart from
        // e, pi and Euler's gamma every printed constant survives.
        let cfg = crate::symbolic::SymbolicConfig {
            prob_const: 0.0,
            ..Default::default()
        };
        let sampler = crate::symbolic::TreeSampler::new(&cfg).unwrap();
        let tok = Tokenizer::default();
        let mut rng = crate::rng::sample_rng(4, 0);
        for _ in 0..500 {
            let s = sampler.sample(&mut rng, 3).to_string();
            assert_eq!(tok.decode(&tok.encode(&s, 10_000).unwrap()), s);
        }
    }

    #[test]
    fn truncation_keeps_the_separator_and_unknown_names_fail() {
        let tok = Tokenizer::default();
        let ids = tok.encode("sin(x0) + cos(x1) + exp(x2)", 6).unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(*ids.last().unwrap(), SEP);
        assert!(tok
            .encode("foo(x0)", 16)
            .unwrap_err()
            .to_string()
            .contains("foo"));
    }
}
