//! The breaker's state, packed into one 64-bit word so that every transition is one
//! compare-and-swap:
//!
//! ```text
//!  63            32 31     27 26       15 14        3 2     0
//! +----------------+---------+-----------+-----------+-------+
//! |   generation   | reopens | successes |  probes   | state |
//! +----------------+---------+-----------+-----------+-------+
//! ```
//!
//! The generation tells a late outcome from a current one; `Stamp` tags a time with it.

use std::fmt;

use crate::sync::{AtomicU64, Ordering};

/// A circuit breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    /// Calls go through; outcomes are recorded and judged.
    Closed,
    /// Calls are rejected at once until the open wait has passed.
    Open,
    /// A limited number of probe calls go through; their outcomes decide between closing and
    /// re-opening.
    HalfOpen,
    /// Rejecting every call by an operator's order, until reset.
    ForcedOpen,
    /// Letting every call through and recording nothing, by an operator's order, until reset.
    Disabled,
}

impl BreakerState {
    fn from_bits(bits: u64) -> Self {
        match bits {
            0 => BreakerState::Closed,
            1 => BreakerState::Open,
            2 => BreakerState::HalfOpen,
            3 => BreakerState::ForcedOpen,
            _ => BreakerState::Disabled,
        }
    }

    fn bits(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
            BreakerState::ForcedOpen => 3,
            BreakerState::Disabled => 4,
        }
    }

    /// The lower-case name used in logs and metrics (`closed`, `half_open`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::Disabled => "disabled",
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const PROBE_SHIFT: u32 = 3;
const SUCCESS_SHIFT: u32 = 15;
const REOPEN_SHIFT: u32 = 27;
const FIELD_MASK: u64 = 0xFFF;
const REOPEN_MAX: u64 = 0x1F;

/// The packed state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    pub(crate) fn new(state: BreakerState, generation: u32) -> Self {
        Word((u64::from(generation) << 32) | state.bits())
    }

    pub(crate) fn state(self) -> BreakerState {
        BreakerState::from_bits(self.0 & 0b111)
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub(crate) fn probes(self) -> u32 {
        ((self.0 >> PROBE_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) fn successes(self) -> u32 {
        ((self.0 >> SUCCESS_SHIFT) & FIELD_MASK) as u32
    }

    pub(crate) fn reopenings(self) -> u32 {
        ((self.0 >> REOPEN_SHIFT) & REOPEN_MAX) as u32
    }

    fn with_field(self, shift: u32, mask: u64, value: u32) -> Self {
        Word((self.0 & !(mask << shift)) | ((u64::from(value) & mask) << shift))
    }

    pub(super) fn with_probes(self, probes: u32) -> Self {
        self.with_field(PROBE_SHIFT, FIELD_MASK, probes)
    }

    pub(super) fn with_successes(self, successes: u32) -> Self {
        self.with_field(SUCCESS_SHIFT, FIELD_MASK, successes)
    }

    /// The word of the next generation in `state`, carrying `reopenings` and no probes.
    pub(super) fn next(self, state: BreakerState, reopenings: u32) -> Self {
        Word::new(state, self.generation().wrapping_add(1)).with_field(
            REOPEN_SHIFT,
            REOPEN_MAX,
            reopenings.min(REOPEN_MAX as u32),
        )
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Word")
            .field("state", &self.state())
            .field("generation", &self.generation())
            .field("probes", &self.probes())
            .field("successes", &self.successes())
            .field("reopenings", &self.reopenings())
            .finish()
    }
}

/// A time in microseconds tagged with the low 16 bits of the generation it belongs to, in one
/// word, so a reader never pairs one generation's state with another's deadline.
pub(crate) struct Stamp(AtomicU64);

const STAMP_TIME_MASK: u64 = (1 << 48) - 1;

impl Stamp {
    pub(super) fn new() -> Self {
        Stamp(AtomicU64::new(0))
    }

    pub(super) fn set(&self, generation: u32, micros: u64) {
        let tag = u64::from(generation as u16) << 48;
        self.0
            .store(tag | (micros & STAMP_TIME_MASK), Ordering::Release);
    }

    /// The time stored for `generation`, if that generation's owner has stored it yet.
    pub(crate) fn get(&self, generation: u32) -> Option<u64> {
        let value = self.0.load(Ordering::Acquire);
        ((value >> 48) as u16 == generation as u16).then_some(value & STAMP_TIME_MASK)
    }
}
