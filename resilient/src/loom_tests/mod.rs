//! Model tests of the lock-free breaker under loom: every interleaving of a few threads (up to
//! a preemption bound) over the state word, the windows and the half-open probe slots.
//!
//! Run them with
//! `RUSTFLAGS="--cfg resilient_loom" cargo test -p resilient --lib --release loom_tests`.
//!
//! Each model is kept to two or three threads and a window of two slots: loom explores every
//! schedule, so the models must stay small to finish in seconds; the races they cover (two
//! callers on one transition, one outcome against one transition) need no more.

use std::sync::Mutex;
use std::time::Duration;

use loom::sync::Arc;
use loom::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use loom::thread;

use crate::breaker::{
    Admission, BreakerConfig, BreakerState, Core, Env, Outcome, SlidingWindow, Transition,
    TransitionReason,
};
use crate::window::{CountWindow, FAILURE, TimeWindow, Window};

/// How long an open breaker waits in these models, in microseconds.
const OPEN_WAIT_MICROS: u64 = 1_000_000;

/// Fixed configuration, a clock the model sets, and every transition the state machine reports.
struct TestEnv {
    config: std::sync::Arc<BreakerConfig>,
    clock: AtomicU64,
    transitions: Mutex<Vec<Transition>>,
}

impl TestEnv {
    fn new(config: BreakerConfig) -> Self {
        TestEnv {
            config: std::sync::Arc::new(config),
            clock: AtomicU64::new(0),
            transitions: Mutex::new(Vec::new()),
        }
    }

    fn set_now(&self, micros: u64) {
        self.clock.store(micros, Ordering::SeqCst);
    }

    fn transitions(&self) -> Vec<Transition> {
        self.transitions.lock().unwrap().clone()
    }
}

impl Env for TestEnv {
    type Config = std::sync::Arc<BreakerConfig>;

    fn config(&self) -> Self::Config {
        self.config.clone()
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn on_transition(&self, transition: Transition) {
        // No loom operation happens while the lock is held, so it never blocks a model thread.
        self.transitions.lock().unwrap().push(transition);
    }
}

/// A breaker's atomics and window, shared by the model's threads.
struct Breaker {
    core: Core,
    window: Window,
    env: TestEnv,
}

impl Breaker {
    fn new(config: BreakerConfig, window: Window) -> Arc<Self> {
        Arc::new(Breaker {
            core: Core::new(0),
            window,
            env: TestEnv::new(config),
        })
    }

    fn admit(&self) -> Admission {
        self.core.admit(&self.window, &self.env)
    }

    fn record_closed(&self, generation: u32, outcome: Outcome) {
        self.core
            .record_closed(generation, outcome, &self.window, &self.env);
    }

    fn record_probe(&self, generation: u32, outcome: Outcome) {
        self.core
            .record_probe(generation, outcome, &self.window, &self.env);
    }

    fn force(&self, state: BreakerState) {
        self.core
            .force(state, TransitionReason::Reset, &self.window, &self.env);
    }

    /// Opens the breaker, lets the open wait pass and returns the half-open generation with
    /// `probes` probes admitted (at least one: the transition admits its caller).
    fn half_open_with(&self, probes: u32) -> u32 {
        self.force(BreakerState::Open);
        self.env.set_now(OPEN_WAIT_MICROS);
        let mut generation = None;
        for _ in 0..probes {
            match self.admit() {
                Admission::Probe(g) => generation = Some(g),
                other => panic!("setup expected a probe, got {other:?}"),
            }
        }
        let generation = generation.expect("at least one probe");
        assert_eq!(self.core.load().state(), BreakerState::HalfOpen);
        generation
    }
}

/// Opens at a failure rate of 50 % over a count window of two calls, judged from one call on,
/// so a single counted failure trips it.
fn rate_config(probes: u32, successes: u32) -> BreakerConfig {
    BreakerConfig::failure_rate(0.5, SlidingWindow::Calls(2), 1)
        .with_open_wait(Duration::from_micros(OPEN_WAIT_MICROS))
        .with_half_open(probes, successes)
        .with_max_half_open(None)
}

fn count_window() -> Window {
    let window = CountWindow::new(2, 0);
    window.set_minimum(1);
    Window::Count(window)
}

fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    // Every interleaving with up to three preemptions: the races below need at most two.
    builder.preemption_bound = Some(3);
    builder.check(test);
}

mod breaker_state;
mod budget_calls_in_flight;
mod bulkhead_slots;
mod count_window;
mod striped_counter;
mod time_window_stripes;
