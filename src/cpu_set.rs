//! [`CpuSet`]: a set of CPU numbers, for affinity beyond the 64 CPUs a
//! `u64` mask can name.

use std::fmt;
use std::str::FromStr;

const WORDS: usize = CpuSet::MAX_CPUS / 64;
const _: () = assert!(CpuSet::MAX_CPUS.is_multiple_of(64) && WORDS > 0);

/// A set of CPUs, numbered as the kernel numbers them: CPU 0 to
/// [`CpuSet::MAX_CPUS`]` - 1` (1023), as many as a `cpu_set_t` holds.
///
/// Give it to [`ThreadBuilder::cpu_set`](crate::ThreadBuilder::cpu_set) to
/// restrict a thread to workers pinned to one of these CPUs; the `u64`
/// mask of [`cpu_affinity`](crate::ThreadBuilder::cpu_affinity) names only
/// CPUs 0 to 63, and converts with [`from_mask`](Self::from_mask) or
/// `From<u64>`.
///
/// A CPU number of `MAX_CPUS` or more is refused, never a panic:
/// [`insert`](Self::insert), [`from_cpus`](Self::from_cpus) and parsing
/// return a [`CpuSetError`] and leave the set as it was.
///
/// It prints (with `{}` and `{:?}` alike) and parses (`str::parse`) as a
/// Linux *cpulist*, as in `/sys/devices/system/cpu/online` or `taskset -c`:
/// CPU numbers and inclusive ranges, ascending, comma-separated, e.g.
/// `0-3,8`. The empty set prints as the empty string.
///
/// ```
/// use preemptive_mlthreading_rust::CpuSet;
///
/// let mut set: CpuSet = "0-3,8".parse().unwrap();
/// set.insert(100).unwrap();
/// set.remove(2);
/// assert_eq!(set.iter().collect::<Vec<_>>(), [0, 1, 3, 8, 100]);
/// assert_eq!(format!("{set:?}"), "0-1,3,8,100");
/// assert_eq!(CpuSet::from(0b1011u64), CpuSet::from_cpus([0, 1, 3]).unwrap());
/// assert!(set.insert(CpuSet::MAX_CPUS).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuSet {
    words: [u64; WORDS],
}

impl CpuSet {
    /// How many CPUs a set can name (`libc::CPU_SETSIZE`, 1024): the CPUs
    /// numbered below it.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// let mut set = CpuSet::new();
    /// assert_eq!(set.insert(CpuSet::MAX_CPUS - 1), Ok(true));
    /// assert!(set.insert(CpuSet::MAX_CPUS).is_err());
    /// ```
    pub const MAX_CPUS: usize = libc::CPU_SETSIZE as usize;

    /// The empty set.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// assert!(CpuSet::new().is_empty());
    /// ```
    pub const fn new() -> Self {
        CpuSet { words: [0; WORDS] }
    }

    /// The CPUs whose bit is set in `mask` (bit `n` = CPU `n`), as
    /// [`ThreadBuilder::cpu_affinity`](crate::ThreadBuilder::cpu_affinity)
    /// reads it.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// let set = CpuSet::from_mask(1 | 1 << 63);
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [0, 63]);
    /// ```
    pub const fn from_mask(mask: u64) -> Self {
        let mut set = CpuSet::new();
        set.words[0] = mask;
        set
    }

    /// The set of `cpus` (in any order, repeats allowed), or the error
    /// for the first one that is [`MAX_CPUS`](Self::MAX_CPUS) or more.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{CpuSet, CpuSetError};
    ///
    /// let set = CpuSet::from_cpus([70, 1, 70]).unwrap();
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [1, 70]);
    /// assert_eq!(CpuSet::from_cpus(0..2000), Err(CpuSetError::OutOfRange { cpu: 1024, part: None }));
    /// ```
    pub fn from_cpus(cpus: impl IntoIterator<Item = usize>) -> Result<Self, CpuSetError> {
        let mut set = CpuSet::new();
        for cpu in cpus {
            set.insert(cpu)?;
        }
        Ok(set)
    }

    /// Adds `cpu`; returns whether it was new. A CPU of
    /// [`MAX_CPUS`](Self::MAX_CPUS) or more is an error, and the set is
    /// left unchanged.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{CpuSet, CpuSetError};
    ///
    /// let mut set = CpuSet::new();
    /// assert_eq!(set.insert(65), Ok(true));
    /// assert_eq!(set.insert(65), Ok(false));
    /// assert_eq!(set.insert(5000), Err(CpuSetError::OutOfRange { cpu: 5000, part: None }));
    /// assert_eq!(set.len(), 1);
    /// ```
    pub fn insert(&mut self, cpu: usize) -> Result<bool, CpuSetError> {
        if cpu >= Self::MAX_CPUS {
            return Err(CpuSetError::OutOfRange { cpu, part: None });
        }
        let new = !self.contains(cpu);
        self.words[cpu / 64] |= 1 << (cpu % 64);
        Ok(new)
    }

    /// Removes `cpu`; returns whether it was there (never, for a CPU of
    /// [`MAX_CPUS`](Self::MAX_CPUS) or more).
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// let mut set = CpuSet::from_mask(0b11);
    /// assert!(set.remove(1));
    /// assert!(!set.remove(1));
    /// assert!(!set.remove(usize::MAX));
    /// assert_eq!(set, CpuSet::from_mask(0b1));
    /// ```
    pub fn remove(&mut self, cpu: usize) -> bool {
        let had = self.contains(cpu);
        if had {
            self.words[cpu / 64] &= !(1 << (cpu % 64));
        }
        had
    }

    /// Whether `cpu` is in the set.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// let set = CpuSet::from_cpus([200]).unwrap();
    /// assert!(set.contains(200));
    /// assert!(!set.contains(8) && !set.contains(usize::MAX));
    /// ```
    pub fn contains(&self, cpu: usize) -> bool {
        cpu < Self::MAX_CPUS && self.words[cpu / 64] & (1 << (cpu % 64)) != 0
    }

    /// The CPUs in ascending order.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// let set = CpuSet::from_cpus([1023, 64, 0]).unwrap();
    /// assert_eq!(set.iter().collect::<Vec<_>>(), [0, 64, 1023]);
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter { words: &self.words, word: 0, bits: self.words[0] }
    }

    /// How many CPUs the set holds.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// assert_eq!("0-3,100".parse::<CpuSet>().unwrap().len(), 5);
    /// ```
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set holds no CPU.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::CpuSet;
    ///
    /// assert!(CpuSet::from_mask(0).is_empty());
    /// assert!(!CpuSet::from_mask(1 << 5).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The CPUs below 64 as a `u64` mask (bit `n` = CPU `n`); CPUs from
    /// 64 on are left out.
    pub(crate) fn low_mask(&self) -> u64 {
        self.words[0]
    }

    /// Whether the two sets share a CPU.
    pub(crate) fn intersects(&self, other: &CpuSet) -> bool {
        self.words.iter().zip(&other.words).any(|(a, b)| a & b != 0)
    }
}

impl From<u64> for CpuSet {
    /// [`CpuSet::from_mask`].
    fn from(mask: u64) -> Self {
        CpuSet::from_mask(mask)
    }
}

impl<'a> IntoIterator for &'a CpuSet {
    type Item = usize;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The CPUs of a [`CpuSet`] in ascending order, from [`CpuSet::iter`].
///
/// ```
/// use preemptive_mlthreading_rust::CpuSet;
///
/// let set = CpuSet::from_mask(0b110);
/// let mut it = set.iter();
/// assert_eq!((it.next(), it.next(), it.next()), (Some(1), Some(2), None));
/// ```
#[derive(Clone, Debug)]
pub struct Iter<'a> {
    words: &'a [u64; WORDS],
    /// The word `bits` came from.
    word: usize,
    /// What is left of that word to visit.
    bits: u64,
}

impl Iterator for Iter<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.word += 1;
            self.bits = *self.words.get(self.word)?;
        }
        let bit = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(self.word * 64 + bit)
    }
}

impl std::iter::FusedIterator for Iter<'_> {}

impl fmt::Display for CpuSet {
    /// The cpulist, e.g. `0-3,8`: a run of two or more CPUs as a range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut cpus = self.iter().peekable();
        let mut first = true;
        while let Some(start) = cpus.next() {
            let mut end = start;
            while cpus.next_if_eq(&(end + 1)).is_some() {
                end += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if end == start { write!(f, "{start}")? } else { write!(f, "{start}-{end}")? }
        }
        Ok(())
    }
}

impl fmt::Debug for CpuSet {
    /// The cpulist, as [`Display`](fmt::Display) prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for CpuSet {
    type Err = CpuSetError;

    /// Parses a cpulist: comma-separated CPU numbers `N` and inclusive
    /// ranges `N-M` (`N <= M`), in any order. Blanks around the whole and
    /// around each part are ignored, so a line read from sysfs parses as
    /// it is; an empty (or blank) string is the empty set. The error names
    /// the first bad part. The kernel's stride form (`0-7:2`) is not taken.
    ///
    /// ```
    /// use preemptive_mlthreading_rust::{CpuSet, CpuSetError};
    ///
    /// assert_eq!("8, 0-3\n".parse::<CpuSet>().unwrap().to_string(), "0-3,8");
    /// let err = "0-3,x".parse::<CpuSet>().unwrap_err();
    /// assert_eq!(err, CpuSetError::Malformed { part: "x".into() });
    /// assert!(err.to_string().contains("\"x\""), "{err}");
    /// ```
    fn from_str(s: &str) -> Result<Self, CpuSetError> {
        let mut set = CpuSet::new();
        let s = s.trim();
        if s.is_empty() {
            return Ok(set);
        }
        for part in s.split(',').map(str::trim) {
            let malformed = || CpuSetError::Malformed { part: part.to_owned() };
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (cpu_number(lo).ok_or_else(malformed)?, cpu_number(hi).ok_or_else(malformed)?),
                None => {
                    let cpu = cpu_number(part).ok_or_else(malformed)?;
                    (cpu, cpu)
                }
            };
            if lo > hi {
                return Err(malformed());
            }
            if hi >= Self::MAX_CPUS {
                return Err(CpuSetError::OutOfRange { cpu: hi, part: Some(part.to_owned()) });
            }
            for cpu in lo..=hi {
                set.words[cpu / 64] |= 1 << (cpu % 64);
            }
        }
        Ok(set)
    }
}

/// A CPU number in decimal digits only (no sign, no blanks); None for
/// anything else, including a number beyond `usize`.
fn cpu_number(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Why a [`CpuSet`] refused a CPU or a cpulist.
///
/// ```
/// use preemptive_mlthreading_rust::{CpuSet, CpuSetError};
///
/// let err = "0-4095".parse::<CpuSet>().unwrap_err();
/// assert!(matches!(&err, CpuSetError::OutOfRange { cpu: 4095, part: Some(p) } if p == "0-4095"));
/// println!("{err}"); // names the part and the largest CPU a set can hold
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CpuSetError {
    /// A CPU at or beyond [`CpuSet::MAX_CPUS`].
    OutOfRange {
        /// The CPU.
        cpu: usize,
        /// The cpulist part naming it, when parsing.
        part: Option<String>,
    },
    /// A cpulist part that is neither a CPU number nor a range `N-M` with
    /// `N <= M` (an empty part: a doubled or trailing comma).
    Malformed {
        /// The part, blanks trimmed.
        part: String,
    },
}

impl fmt::Display for CpuSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let max = CpuSet::MAX_CPUS - 1;
        match self {
            CpuSetError::OutOfRange { cpu, part: None } => {
                write!(f, "CPU {cpu} is beyond what a CpuSet can hold (CPUs 0 to {max}); name a lower CPU")
            }
            CpuSetError::OutOfRange { cpu, part: Some(part) } => write!(
                f,
                "cpulist part {part:?} names CPU {cpu}, beyond what a CpuSet can hold (CPUs 0 to {max}); \
                 name lower CPUs"
            ),
            CpuSetError::Malformed { part } if part.is_empty() => {
                write!(f, "a cpulist has an empty part (a doubled or trailing comma); write it like \"0-3,8\"")
            }
            CpuSetError::Malformed { part } => write!(
                f,
                "cpulist part {part:?} is neither a CPU number nor a range N-M with N <= M; write the \
                 list like \"0-3,8\""
            ),
        }
    }
}

impl std::error::Error for CpuSetError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpus(set: &CpuSet) -> Vec<usize> {
        set.iter().collect()
    }

    #[test]
    fn a_mask_and_its_set_name_the_same_cpus() {
        for mask in [0u64, 1, 0b1011, 1 << 63, u64::MAX, 0x8000_0000_0000_0001] {
            let set = CpuSet::from(mask);
            assert_eq!(set, CpuSet::from_mask(mask));
            assert_eq!(set.low_mask(), mask);
            assert_eq!(set.len(), mask.count_ones() as usize);
            let expected: Vec<usize> = (0..64).filter(|&c| mask & (1 << c) != 0).collect();
            assert_eq!(cpus(&set), expected, "{mask:#x}");
            assert_eq!(CpuSet::from_cpus(expected).unwrap(), set);
        }
    }

    #[test]
    fn cpus_from_64_on_live_beyond_the_mask() {
        let set = CpuSet::from_cpus([63, 64, 127, 128, 1023]).unwrap();
        assert_eq!(cpus(&set), [63, 64, 127, 128, 1023]);
        assert_eq!(set.len(), 5);
        assert_eq!(set.low_mask(), 1 << 63, "only CPU 63 fits a u64 mask");
        assert!(set.contains(64) && set.contains(1023) && !set.contains(65));
        // No CPU from 64 on aliases a low one.
        assert!(!CpuSet::from_cpus([64]).unwrap().contains(0));
        assert!(!CpuSet::from_mask(1).contains(64));
        assert!(CpuSet::from_cpus([100]).unwrap().intersects(&CpuSet::from_cpus([5, 100]).unwrap()));
        assert!(!CpuSet::from_cpus([100]).unwrap().intersects(&CpuSet::from_mask(u64::MAX)));
    }

    #[test]
    fn insert_and_remove_report_changes_and_refuse_out_of_range() {
        let mut set = CpuSet::new();
        assert_eq!(set.insert(700), Ok(true));
        assert_eq!(set.insert(700), Ok(false));
        let before = set;
        assert_eq!(set.insert(1024), Err(CpuSetError::OutOfRange { cpu: 1024, part: None }));
        assert_eq!(set.insert(usize::MAX), Err(CpuSetError::OutOfRange { cpu: usize::MAX, part: None }));
        assert_eq!(set, before, "a refused insert changes nothing");
        assert!(!set.remove(1024) && !set.remove(699));
        assert!(set.remove(700));
        assert!(set.is_empty());
        assert_eq!(set.len(), 0);
        assert_eq!(CpuSet::from_cpus([3, 1024, 5]), Err(CpuSetError::OutOfRange { cpu: 1024, part: None }));
    }

    #[test]
    fn iteration_crosses_words_and_ends() {
        let all = CpuSet::from_cpus(0..CpuSet::MAX_CPUS).unwrap();
        assert_eq!(all.len(), 1024);
        assert!(all.iter().eq(0..1024));
        let last = CpuSet::from_cpus([1023]).unwrap();
        let mut it = last.iter();
        assert_eq!((it.next(), it.next(), it.next()), (Some(1023), None, None));
        assert_eq!(CpuSet::new().iter().next(), None);
    }

    #[test]
    fn prints_a_cpulist() {
        let show = |cpus: &[usize]| format!("{:?}", CpuSet::from_cpus(cpus.iter().copied()).unwrap());
        assert_eq!(show(&[]), "");
        assert_eq!(show(&[5]), "5");
        assert_eq!(show(&[0, 1]), "0-1");
        assert_eq!(show(&[0, 1, 2, 3, 8]), "0-3,8");
        assert_eq!(show(&[0, 2, 4]), "0,2,4");
        assert_eq!(show(&[62, 63, 64, 65, 1023]), "62-65,1023");
        assert_eq!(format!("{}", CpuSet::from_mask(u64::MAX)), "0-63");
    }

    #[test]
    fn parses_what_it_prints() {
        for list in ["", "0", "0-3,8", "1,3,5-9,64-127,1000-1023"] {
            let set: CpuSet = list.parse().unwrap();
            assert_eq!(set.to_string(), list);
        }
        let set: CpuSet = " 9 , 2-3,3-4,2\n".parse().unwrap();
        assert_eq!(cpus(&set), [2, 3, 4, 9]);
        assert_eq!("7-7".parse::<CpuSet>().unwrap(), CpuSet::from_mask(1 << 7));
        assert!("  \n".parse::<CpuSet>().unwrap().is_empty());
    }

    #[test]
    fn parse_errors_name_the_bad_part() {
        let malformed = |s: &str, part: &str| {
            let err = s.parse::<CpuSet>().unwrap_err();
            assert_eq!(err, CpuSetError::Malformed { part: part.into() }, "{s:?}");
            err.to_string()
        };
        assert!(malformed("0-3,x", "x").contains("\"x\""));
        assert!(malformed("5-3", "5-3").contains("N <= M"));
        malformed("0,,2", "");
        assert!(malformed("0,", "").contains("empty part"));
        malformed("-1", "-1");
        malformed("+1", "+1");
        malformed("1-", "1-");
        malformed("1-2-3", "1-2-3");
        malformed("0-7:2", "0-7:2");
        malformed("99999999999999999999999", "99999999999999999999999");
        let err = "0,64-1024".parse::<CpuSet>().unwrap_err();
        assert_eq!(err, CpuSetError::OutOfRange { cpu: 1024, part: Some("64-1024".into()) });
        let msg = err.to_string();
        assert!(msg.contains("\"64-1024\"") && msg.contains("0 to 1023"), "{msg}");
    }
}
