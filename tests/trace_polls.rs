//! With the `trace-polls` feature, every poll a worker runs is inside a
//! `poll` span carrying the task's id (run by `.ci/run` with the feature).

#![cfg(feature = "trace-polls")]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records the `task.id` of every `poll` span created.
#[derive(Default)]
struct Polls {
    ids: Mutex<Vec<u64>>,
    next: std::sync::atomic::AtomicU64,
}

struct Recorder(Arc<Polls>);

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.name() == "poll"
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        struct Visit(Option<u64>);
        impl tracing::field::Visit for Visit {
            fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
                if field.name() == "task.id" {
                    self.0 = Some(value);
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut visit = Visit(None);
        span.record(&mut visit);
        if let Some(id) = visit.0 {
            self.0.ids.lock().unwrap().push(id);
        }
        let n = self
            .0
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Id::from_u64(n + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn every_poll_is_in_a_span_with_the_task_id() {
    let polls = Arc::new(Polls::default());
    tracing::subscriber::set_global_default(Recorder(polls.clone())).unwrap();
    let rt = wq::Builder::new().workers(2).build().unwrap();
    let handles: Vec<_> = (0..20)
        .map(|_| {
            rt.spawn(async {
                wq::task::yield_now().await;
            })
        })
        .collect();
    let ids: Vec<u64> = handles
        .iter()
        .map(|h| h.id().to_string().parse().unwrap())
        .collect();
    for handle in handles {
        rt.block_on(handle).unwrap();
    }
    let seen = polls.ids.lock().unwrap().clone();
    for id in &ids {
        let polls_of_task = seen.iter().filter(|&&s| s == *id).count();
        assert!(
            polls_of_task >= 2,
            "task {id} was polled in {polls_of_task} spans"
        );
    }
    let distinct: HashSet<u64> = seen.iter().copied().collect();
    assert!(ids.iter().all(|id| distinct.contains(id)));
}
