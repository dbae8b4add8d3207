//! Criterion benches for the forwarding pipeline of `examples/forward`
//! (the same code, `pipeline.rs`): 64-byte frames without clones (the
//! `forward_64b_mpps` compare row's setting), and the example's default
//! frame mix with one packet in eight cloned to the mirror. One iteration
//! is one packet; each sample is one run of the pipeline (its provider,
//! pools and threads are set up outside the timed part, which runs from
//! the stages' start to the end of the last one). Every run must pass the
//! example's checks.

// The example's progress and report fields the benches do not read.
#[allow(dead_code)]
#[path = "../examples/forward/pipeline.rs"]
mod pipeline;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pipeline::{Config, Share, Sizes};

fn run_checked(cfg: &Config) -> Duration {
    let report = pipeline::run(cfg).expect("the pipeline runs");
    let problems = report.problems();
    assert!(
        problems.is_empty(),
        "checks failed: {}",
        problems.join("; ")
    );
    report.elapsed
}

fn forward(c: &mut Criterion) {
    let mut g = c.benchmark_group("forward");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let base = Config {
        quiet: true,
        ..Config::default()
    };
    g.bench_function("64b_no_clones", |b| {
        b.iter_custom(|packets| {
            run_checked(&Config {
                packets: packets.max(1),
                sizes: Sizes::Fixed(64),
                clone_share: Share::NONE,
                ..base.clone()
            })
        });
    });
    g.bench_function("mix_clone_1_in_8", |b| {
        b.iter_custom(|packets| {
            run_checked(&Config {
                packets: packets.max(1),
                ..base.clone()
            })
        });
    });
    g.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
