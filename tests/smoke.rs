mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_one_through_proxy() {
    let env = common::TestEnv::start(|_| {}).await;
    let client = env.connect().await;
    let row = client
        .query_one("select 1::int4 + $1::int4", &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
}
