//! A portable report of the optional CPU features this process may use, as
//! detected at run time (not what the binary was compiled for).

use super::Isa;
use core::fmt;

/// Whether one optional feature is usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// The CPU has it and the kernel lets this process use it.
    Present,
    /// The check ran and said no.
    Absent,
    /// No check could tell (an old kernel without the query, an emulator):
    /// not the same as absent.
    Unknown,
}

impl Support {
    /// `Present` or `Absent` from a check that gave an answer.
    pub fn from_bool(present: bool) -> Support {
        if present { Support::Present } else { Support::Absent }
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Support::Present => "yes",
            Support::Absent => "no",
            Support::Unknown => "unknown",
        })
    }
}

/// One feature check: its usual name (`"AVX2"`, `"SVE"`, `"Zbb"`) and the
/// answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name as the ISA's manuals spell it.
    pub name: &'static str,
    /// What the run-time check found.
    pub support: Support,
}

/// The ISA this process runs on and its optional features that matter to
/// the tuning guide's advice (vector units, bit manipulation); see
/// [`features`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchFeatures {
    /// `target_arch` of this build: `"x86_64"`, `"aarch64"` or `"riscv64"`.
    pub isa: &'static str,
    /// The checks made for this ISA, in a fixed order.
    pub features: Vec<Feature>,
}

impl ArchFeatures {
    /// The answer for `name` (compared ignoring ASCII case), or `None` when
    /// this ISA has no such check.
    pub fn support(&self, name: &str) -> Option<Support> {
        self.features.iter().find(|f| f.name.eq_ignore_ascii_case(name)).map(|f| f.support)
    }
}

impl fmt::Display for ArchFeatures {
    /// `riscv64: V=no Zbb=unknown`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.isa)?;
        for feature in &self.features {
            write!(f, " {}={}", feature.name, feature.support)?;
        }
        Ok(())
    }
}

/// Detects, at run time, the optional features of the CPU this process
/// runs on: AVX, AVX2 and AVX-512F on x86_64; NEON and SVE on aarch64; V
/// (from `AT_HWCAP`) and Zbb (from the `riscv_hwprobe` syscall, `Unknown`
/// on kernels before 6.4 and emulators without it) on riscv64.
///
/// ```
/// use preemptive_mlthreading_rust::arch::{self, Support};
///
/// let report = arch::features();
/// println!("{report}"); // e.g. "x86_64: AVX=yes AVX2=yes AVX-512F=no"
/// assert!(!report.features.is_empty());
/// if report.support("AVX2") == Some(Support::Present) {
///     // an AVX2 code path would be safe to take here
/// }
/// assert_eq!(report.support("no such feature"), None);
/// ```
pub fn features() -> ArchFeatures {
    ArchFeatures { isa: super::Current::NAME, features: super::Current::features() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_names_this_isa_and_answers_every_check() {
        let report = features();
        assert_eq!(report.isa, std::env::consts::ARCH);
        assert!(!report.features.is_empty());
        let shown = report.to_string();
        assert!(shown.starts_with(&format!("{}:", report.isa)), "{shown}");
        for f in &report.features {
            assert_eq!(report.support(f.name), Some(f.support));
            assert_eq!(report.support(&f.name.to_ascii_lowercase()), Some(f.support));
            assert!(shown.contains(&format!(" {}={}", f.name, f.support)), "{shown}");
        }
        assert_eq!(report.support("no such feature"), None);
        // The same machine gives the same answers.
        assert_eq!(features(), report);
        println!("{report}");
    }

    #[test]
    fn unknown_is_shown_as_unknown_not_no() {
        let r = ArchFeatures {
            isa: "riscv64",
            features: vec![
                Feature { name: "V", support: Support::from_bool(false) },
                Feature { name: "Zbb", support: Support::Unknown },
            ],
        };
        assert_eq!(r.to_string(), "riscv64: V=no Zbb=unknown");
        assert_eq!(format!("{}", Support::from_bool(true)), "yes");
    }
}
