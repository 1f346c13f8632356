//! Optional preprocessing of captured frames, so that a raw camera view looks like the
//! study's processed frames (bright fish on black) before y~ and the model see it.

/// What to do to each GRAY8 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preprocess {
    /// Frames are used as they come (already bright fish on black).
    #[default]
    None,
    /// `255 - v`: dark fish on a bright tank become bright on dark.
    Invert,
    /// Subtract a running background estimate: what differs from the slowly learned empty
    /// tank (the fish) becomes bright on black, whatever the lighting.
    Bgsub,
}

impl std::str::FromStr for Preprocess {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Preprocess> {
        match s {
            "none" => Ok(Preprocess::None),
            "invert" => Ok(Preprocess::Invert),
            "bgsub" => Ok(Preprocess::Bgsub),
            _ => Err(crate::Error::Input(format!(
                "preprocess {s:?}; expected none, invert or bgsub"
            ))),
        }
    }
}

impl std::fmt::Display for Preprocess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Preprocess::None => "none",
            Preprocess::Invert => "invert",
            Preprocess::Bgsub => "bgsub",
        })
    }
}

/// Per-source preprocessing state (the background estimate for `Bgsub`).
#[derive(Debug, Clone)]
pub struct Preprocessor {
    kind: Preprocess,
    background: Vec<f32>,
}

/// Weight of each new frame in the background estimate: a time constant of about 17 s at
/// 30 fps, slow enough that a fish resting for a few seconds does not fade into it.
const BACKGROUND_RATE: f32 = 0.002;

impl Preprocessor {
    pub fn new(kind: Preprocess) -> Self {
        Preprocessor {
            kind,
            background: Vec::new(),
        }
    }

    /// Transforms `frame` in place.
    pub fn apply(&mut self, frame: &mut [u8]) {
        match self.kind {
            Preprocess::None => {}
            Preprocess::Invert => frame.iter_mut().for_each(|v| *v = 255 - *v),
            Preprocess::Bgsub => {
                if self.background.len() != frame.len() {
                    self.background = frame.iter().map(|&v| v as f32).collect();
                }
                for (v, b) in frame.iter_mut().zip(self.background.iter_mut()) {
                    let x = *v as f32;
                    *b += BACKGROUND_RATE * (x - *b);
                    *v = (x - *b).abs().min(255.0) as u8;
                }
            }
        }
    }

    /// Forgets the background (after a reconnect the view may have changed).
    pub fn reset(&mut self) {
        self.background.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bgsub_makes_a_dark_fish_bright() {
        let mut p = Preprocessor::new(Preprocess::Bgsub);
        let mut empty = vec![200u8; 16];
        for _ in 0..5 {
            p.apply(&mut empty.clone());
        }
        empty[3] = 40; // a dark fish arrives
        p.apply(&mut empty);
        assert!(empty[3] > 150, "fish {}", empty[3]);
        assert!(empty[0] < 2, "tank {}", empty[0]);
    }

    #[test]
    fn invert() {
        let mut f = vec![0u8, 255, 10];
        Preprocessor::new(Preprocess::Invert).apply(&mut f);
        assert_eq!(f, vec![255, 0, 245]);
    }
}
