//! Interval and its missed-tick behaviors, with exact instants on a paused
//! clock.

use std::time::Duration;

use wq::time::{interval, interval_at, Instant, MissedTickBehavior};

const PERIOD: Duration = Duration::from_millis(100);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[wq::test(start_paused = true)]
async fn ticks_on_schedule() {
    let start = Instant::now();
    let mut iv = interval(PERIOD);
    assert_eq!(iv.period(), PERIOD);
    for n in 0..5 {
        assert_eq!(iv.tick().await, start + PERIOD * n);
        assert_eq!(Instant::now(), start + PERIOD * n);
    }
}

#[wq::test(start_paused = true)]
async fn burst_catches_up() {
    let start = Instant::now();
    let mut iv = interval(PERIOD);
    assert_eq!(iv.missed_tick_behavior(), MissedTickBehavior::Burst);
    assert_eq!(iv.tick().await, start);
    wq::time::advance(ms(350)).await;
    // Late ticks fire at once, on the original schedule.
    assert_eq!(iv.tick().await, start + ms(100));
    assert_eq!(iv.tick().await, start + ms(200));
    assert_eq!(iv.tick().await, start + ms(300));
    assert_eq!(Instant::now(), start + ms(350));
    assert_eq!(iv.tick().await, start + ms(400));
    assert_eq!(Instant::now(), start + ms(400));
}

#[wq::test(start_paused = true)]
async fn delay_shifts_the_schedule() {
    let start = Instant::now();
    let mut iv = interval(PERIOD);
    iv.set_missed_tick_behavior(MissedTickBehavior::Delay);
    assert_eq!(iv.tick().await, start);
    wq::time::advance(ms(350)).await;
    assert_eq!(iv.tick().await, start + ms(100));
    assert_eq!(iv.tick().await, start + ms(450));
    assert_eq!(iv.tick().await, start + ms(550));
}

#[wq::test(start_paused = true)]
async fn skip_jumps_to_the_next_scheduled_tick() {
    let start = Instant::now();
    let mut iv = interval(PERIOD);
    iv.set_missed_tick_behavior(MissedTickBehavior::Skip);
    assert_eq!(iv.tick().await, start);
    wq::time::advance(ms(350)).await;
    assert_eq!(iv.tick().await, start + ms(100));
    assert_eq!(iv.tick().await, start + ms(400));
    assert_eq!(iv.tick().await, start + ms(500));
}

#[wq::test(start_paused = true)]
async fn interval_at_and_reset() {
    let start = Instant::now();
    let mut iv = interval_at(start + ms(30), PERIOD);
    assert_eq!(iv.tick().await, start + ms(30));
    iv.reset();
    assert_eq!(iv.tick().await, start + ms(130));
    iv.reset_after(ms(5));
    assert_eq!(iv.tick().await, start + ms(135));
    iv.reset_immediately();
    assert_eq!(iv.tick().await, start + ms(135));
}

#[test]
#[should_panic(expected = "`period` must be non-zero.")]
fn zero_period_panics() {
    let rt = wq::Runtime::new().unwrap();
    let _guard = rt.enter();
    drop(interval(Duration::ZERO));
}
