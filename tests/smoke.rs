use resilient::*;
use std::time::Duration;

#[derive(Debug)]
enum E {
    Down,
    R(Rejection),
}
impl From<Rejection> for E {
    fn from(r: Rejection) -> Self {
        E::R(r)
    }
}

#[tokio::test(start_paused = true)]
async fn trips_and_recovers() {
    let reg = Registry::new();
    reg.declare_breaker(
        "db",
        BreakerConfig::consecutive_failures(3)
            .with_open_wait(Duration::from_secs(10))
            .with_half_open(1, 1),
    )
    .unwrap();
    let p = Policy::builder("t").breaker("db").build_in(&reg).unwrap();
    for _ in 0..3 {
        let r: Result<(), E> = p.call(|| async { Err(E::Down) }).await;
        assert!(matches!(r, Err(E::Down)));
    }
    let r: Result<(), E> = p.call(|| async { Ok(()) }).await;
    assert!(
        matches!(r, Err(E::R(Rejection::CircuitOpen { .. }))),
        "{r:?}"
    );
    tokio::time::advance(Duration::from_secs(10)).await;
    let r: Result<(), E> = p.call(|| async { Ok(()) }).await;
    assert!(r.is_ok());
    assert_eq!(reg.get_breaker("db").unwrap().state(), BreakerState::Closed);
    let p2 = Policy::builder("t2")
        .timeout(Duration::from_millis(100))
        .retries(2)
        .backoff(Backoff::constant(Duration::from_millis(50)))
        .breaker("db")
        .build_in(&reg)
        .unwrap();
    let start = tokio::time::Instant::now();
    let r: Result<(), E> = p2
        .call(|| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .await;
    assert!(matches!(r, Err(E::R(Rejection::Timeout { .. }))), "{r:?}");
    assert_eq!(start.elapsed(), Duration::from_millis(400));
    println!("{:?}", reg.breakers());
}
