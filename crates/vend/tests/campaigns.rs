//! Key change campaigns: selection, chunked runs with a checkpoint, stop and resume,
//! delivery with the next purchase (accepted by a meter), items without a set and why,
//! export, and the read-only HTTP view.

#![allow(clippy::unwrap_used, clippy::panic)]

#[path = "support/world.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{Method, StatusCode};
use serde_json::json;
use sts_core::{BaseDate, EncryptionAlgorithm, KeyExpiryNumber, Service, SupplyGroupCode};
use sts_meter::Applied;
use sts_vend::{
    CampaignSelection, CampaignState, CampaignTarget, ChunkDone, KeyRecord, Meter, MeterStatus,
    NewCampaign, RunEnd, VendError,
};
use support::{Engine, World, description, enter_all, numbers, pan, sim_meter, world};

fn record(sgc: SupplyGroupCode, krn: &str, base: BaseDate) -> KeyRecord {
    KeyRecord {
        supply_group: sgc,
        tariff_index: "01".parse().unwrap(),
        key_revision: krn.parse().unwrap(),
        key_type: "2".parse().unwrap(),
        base_date: base,
        derivation: "02".parse().unwrap(),
    }
}

fn meter(pan: &str, key: KeyRecord) -> Meter {
    Meter {
        pan: pan.parse().unwrap(),
        target: key,
        current: key,
        algorithm: EncryptionAlgorithm::Sta,
        key_expiry: KeyExpiryNumber::NEVER,
        utility: Service::Electricity,
        status: MeterStatus::Active,
        last_tid: None,
        created: 1_780_000_000,
        updated: 1_780_000_000,
    }
}

/// `n` meters from DRN 10000 on, on the 1993 key (SGC `w.sgc`, KRN 1): the rollover case.
async fn meters_on_1993(w: &World, n: u64) -> Vec<String> {
    let pans: Vec<String> = (0..n).map(|i| pan(10_000 + i)).collect();
    let key = record(w.sgc, "1", BaseDate::Y1993);
    let meters: Vec<Meter> = pans.iter().map(|p| meter(p, key)).collect();
    assert_eq!(w.state.db().import_meters(&meters).await.unwrap(), n);
    pans
}

fn rollover(w: &World, name: &str, chunk_size: u32) -> NewCampaign {
    NewCampaign {
        name: name.into(),
        selection: CampaignSelection {
            supply_group: Some(w.sgc),
            key_revision: Some("1".parse().unwrap()),
            base_date: Some(BaseDate::Y1993),
            pans: None,
        },
        target: CampaignTarget {
            key_revision: Some("2".parse().unwrap()),
            base_date: Some(BaseDate::Y2014),
            ..CampaignTarget::default()
        },
        chunk_size,
    }
}

async fn run(w: &World, id: i64, stop: &AtomicBool) -> (RunEnd, Vec<ChunkDone>) {
    let mut chunks = Vec::new();
    let end = w
        .state
        .db()
        .run_campaign(id, w.state.security_module(), stop, |c| {
            chunks.push(c.clone())
        })
        .await
        .unwrap();
    (end, chunks)
}

/// (PAN, state) of every item of campaign `id`, in PAN order.
async fn items(w: &World, id: i64) -> Vec<(String, String)> {
    sqlx::query_as::<_, (String, String)>(
        "SELECT pan, state FROM campaign_items WHERE campaign_id = $1 ORDER BY pan",
    )
    .bind(id)
    .fetch_all(w.state.db().pool())
    .await
    .unwrap()
}

async fn rollover_sets_are_delivered_with_the_next_purchase_and_the_meter_takes_them(
    engine: Engine,
) {
    let w = world(engine).await;
    let pans = meters_on_1993(&w, 30).await;
    // Not selected: another revision, and a retired meter.
    let other = pan(20_000);
    let retired = pan(20_001);
    let mut retired_meter = meter(&retired, record(w.sgc, "1", BaseDate::Y1993));
    retired_meter.status = MeterStatus::Retired;
    w.state
        .db()
        .import_meters(&[
            meter(&other, record(w.sgc, "3", BaseDate::Y2014)),
            retired_meter,
        ])
        .await
        .unwrap();
    let old = description(
        &w.get(&format!("/v1/meters/{}", pans[3]), &w.admin)
            .await
            .body,
    );
    let mut sim = sim_meter(&w, &old).await;

    let c = w
        .state
        .db()
        .create_campaign(&rollover(&w, "rollover-2024", 7))
        .await
        .unwrap();
    assert_eq!(
        (c.state, c.selected, c.processed),
        (CampaignState::Created, 30, 0)
    );
    let (end, chunks) = run(&w, c.id, &AtomicBool::new(false)).await;
    assert_eq!(end, RunEnd::Done);
    assert_eq!(
        chunks.iter().map(|c| c.meters).collect::<Vec<_>>(),
        [7, 7, 7, 7, 2]
    );
    assert_eq!(chunks.last().unwrap().processed, 30);
    assert_eq!(chunks[0].last, pans[6]);
    let c = w.state.db().campaign(c.id).await.unwrap();
    assert_eq!(c.state, CampaignState::Done);
    assert_eq!((c.processed, c.items.pending, c.chunks), (30, 30, 5));
    assert_eq!(c.checkpoint.unwrap().as_str(), pans[29]);
    let listed = items(&w, c.id).await;
    assert_eq!(
        listed.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(),
        pans
    );

    // Each selected meter now has the key change pending; the others do not.
    let m = w
        .get(&format!("/v1/meters/{}", pans[3]), &w.admin)
        .await
        .body;
    assert_eq!(m["pending_key_change"]["to"]["krn"], "2");
    assert_eq!(m["pending_key_change"]["to"]["base_date"], "2014");
    for p in [&other, &retired] {
        let m = w.get(&format!("/v1/meters/{p}"), &w.admin).await.body;
        assert!(m["pending_key_change"].is_null(), "{m}");
    }

    // The next purchase: the campaign's set, then credit under the new key.
    let (tokens_text,): (String,) =
        sqlx::query_as("SELECT tokens FROM campaign_items WHERE campaign_id = $1 AND pan = $2")
            .bind(c.id)
            .bind(&pans[3])
            .fetch_one(w.state.db().pool())
            .await
            .unwrap();
    let stored: Vec<String> = tokens_text
        .split(' ')
        .map(|t| t.split_once(':').unwrap().1.to_owned())
        .collect();
    let a = w
        .vend(
            &w.vendor,
            "buy-1",
            &pans[3],
            json!({"type": "credit", "amount": "25"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    let tokens = numbers(&a.body);
    assert_eq!(tokens.len(), 3);
    assert_eq!(
        tokens[..2],
        stored[..],
        "the precomputed set, not a new one"
    );
    assert_eq!(a.body["key_change"]["campaign"], c.id);
    let applied = enter_all(&mut sim, &a.body);
    assert!(
        !matches!(applied[0], Applied::Credit { .. })
            && !matches!(applied[1], Applied::Credit { .. }),
        "{applied:?}"
    );
    match applied[2] {
        Applied::Credit { added, .. } => assert_eq!(added, 250),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(sim.state().key.base_date, BaseDate::Y2014);
    // A reprint is the same answer; the item is delivered once.
    let again = w
        .vend(
            &w.vendor,
            "buy-1",
            &pans[3],
            json!({"type": "credit", "amount": "25"}),
        )
        .await;
    assert_eq!(
        (again.status, numbers(&again.body)),
        (StatusCode::OK, tokens)
    );
    let (state, request_id): (String, Option<String>) = sqlx::query_as(
        "SELECT state, request_id FROM campaign_items WHERE campaign_id = $1 AND pan = $2",
    )
    .bind(c.id)
    .bind(&pans[3])
    .fetch_one(w.state.db().pool())
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), request_id.as_deref()),
        ("delivered", Some("buy-1"))
    );
    let next = w
        .vend(
            &w.vendor,
            "buy-2",
            &pans[3],
            json!({"type": "credit", "amount": "1"}),
        )
        .await;
    assert_eq!(numbers(&next.body).len(), 1);
    enter_all(&mut sim, &next.body);

    // Running it again changes nothing.
    let (end, chunks) = run(&w, c.id, &AtomicBool::new(false)).await;
    assert_eq!((end, chunks.len()), (RunEnd::Done, 0));
    let c = w.state.db().campaign(c.id).await.unwrap();
    assert_eq!(
        (c.processed, c.items.pending, c.items.delivered),
        (30, 29, 1)
    );

    // The read-only views.
    let list = w.get("/v1/campaigns", &w.auditor).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["campaigns"][0]["name"], "rollover-2024");
    assert_eq!(list.body["campaigns"][0]["items"]["delivered"], 1);
    let one = w.get(&format!("/v1/campaigns/{}", c.id), &w.vendor).await;
    assert_eq!(
        (one.status, &one.body["progress"]),
        (StatusCode::OK, &json!(1.0))
    );
    assert!(
        !one.body.to_string().contains(&stored[0]),
        "no token in the view"
    );
    assert_eq!(
        w.get("/v1/campaigns/x", &w.admin).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        w.get("/v1/campaigns/999", &w.admin).await.status,
        StatusCode::NOT_FOUND
    );
    let anonymous = w.call(Method::GET, "/v1/campaigns", None, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // Export: the pending sets in PAN order, tokens in entry order.
    let db = w.state.db();
    let page = db.campaign_pending_sets(c.id, "", 10).await.unwrap();
    assert_eq!(page.len(), 10);
    assert!(
        page.iter().all(|i| i.pan != pans[3]),
        "delivered sets are not exported"
    );
    assert_eq!(page[0].tokens.len(), 2);
    assert_eq!(page[0].to.key_revision.get(), 2);
    db.mark_exported(c.id, "", &page[9].pan, 10).await.unwrap();
    assert_eq!(db.campaign(c.id).await.unwrap().items.exported, 10);
    let rest = db
        .campaign_pending_sets(c.id, &page[9].pan, 100)
        .await
        .unwrap();
    assert_eq!(rest.len(), 19);
}

async fn a_stopped_run_resumes_after_its_checkpoint_and_does_every_meter_once(engine: Engine) {
    let w = world(engine).await;
    let pans = meters_on_1993(&w, 30).await;
    let c = w
        .state
        .db()
        .create_campaign(&rollover(&w, "stop-and-go", 4))
        .await
        .unwrap();
    let stop = AtomicBool::new(false);
    let mut seen = 0;
    let end = w
        .state
        .db()
        .run_campaign(c.id, w.state.security_module(), &stop, |_| {
            seen += 1;
            if seen == 2 {
                stop.store(true, Ordering::Relaxed);
            }
        })
        .await
        .unwrap();
    assert_eq!((end, seen), (RunEnd::Stopped, 2));
    let half = w.state.db().campaign(c.id).await.unwrap();
    assert_eq!((half.state, half.processed), (CampaignState::Running, 8));
    assert_eq!(half.checkpoint.unwrap().as_str(), pans[7]);
    assert_eq!(items(&w, c.id).await.len(), 8);

    let (end, chunks) = run(&w, c.id, &AtomicBool::new(false)).await;
    assert_eq!(end, RunEnd::Done);
    assert_eq!(chunks[0].first, pans[8], "resumes after the checkpoint");
    let all = items(&w, c.id).await;
    assert_eq!(all.len(), 30);
    assert!(all.iter().all(|(_, s)| s == "pending"));
    assert_eq!(all.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), pans);
    // The security module issued each meter's set once.
    let mut issued = Vec::new();
    for entry in w.state.security_module().audit_log().await.unwrap() {
        if let Ok(Some(sts_keys::audit::BatchRecords::KeyChanges(records))) = entry.batch_records()
        {
            issued.extend(records.iter().map(|r| r.current.pan.as_str().to_owned()));
        }
    }
    issued.sort();
    assert_eq!(issued, pans);
}

async fn items_without_a_set_say_why(engine: Engine) {
    let w = world(engine).await;
    let db = w.state.db();
    let pans = meters_on_1993(&w, 3).await;
    // Already on the target; a key the module does not hold (KRN 4); a key change pending.
    let (on_target, unknown_key, pending) = (pan(30_000), pan(30_001), pan(30_002));
    db.import_meters(&[
        meter(&on_target, record(w.sgc, "2", BaseDate::Y2014)),
        meter(&unknown_key, record(w.sgc, "4", BaseDate::Y1993)),
        meter(&pending, record(w.sgc, "1", BaseDate::Y1993)),
    ])
    .await
    .unwrap();
    let up = w
        .call(
            Method::PATCH,
            &format!("/v1/meters/{pending}"),
            Some(&w.admin),
            Some(json!({"krn": "3", "base_date": "2014"})),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK, "{}", up.body);
    let mut list: Vec<sts_core::MeterPan> = pans.iter().map(|p| p.parse().unwrap()).collect();
    for p in [&on_target, &unknown_key, &pending, &pans[0]] {
        list.push(p.parse().unwrap());
    }
    let mut new = rollover(&w, "by-list", 100);
    new.selection = CampaignSelection {
        pans: Some(list.clone()),
        ..CampaignSelection::default()
    };
    // A list with an unregistered PAN is refused whole.
    let mut bad = new.clone();
    bad.name = "bad-list".into();
    bad.selection
        .pans
        .as_mut()
        .unwrap()
        .push(pan(99_999).parse().unwrap());
    match db.create_campaign(&bad).await {
        Err(VendError::Invalid { fields, .. }) => {
            assert!(fields["pans"].contains(&pan(99_999)), "{fields:?}")
        }
        other => panic!("{other:?}"),
    }
    assert!(db.campaign_named("bad-list").await.is_err());
    let c = db.create_campaign(&new).await.unwrap();
    assert_eq!(c.selected, 6, "repeats in the list count once");
    let (end, _) = run(&w, c.id, &AtomicBool::new(false)).await;
    assert_eq!(end, RunEnd::Done);
    let c = db.campaign(c.id).await.unwrap();
    assert_eq!(
        (c.items.pending, c.items.skipped, c.items.failed),
        (3, 2, 1)
    );
    let problems = db.campaign_problems(c.id, "", 10).await.unwrap();
    let why = |p: &str| problems.iter().find(|x| x.pan == p).unwrap().reason.clone();
    assert!(why(&on_target).contains("already holds"), "{problems:?}");
    assert!(
        why(&pending).contains("another key change is pending"),
        "{problems:?}"
    );
    assert!(why(&unknown_key).contains("revision 4"), "{problems:?}");
    // The pending meter keeps its own key change (KRN 3), not the campaign's.
    let m = w.get(&format!("/v1/meters/{pending}"), &w.admin).await.body;
    assert_eq!(m["krn"], "3");

    // A meter whose key record changes after the run: its set is superseded, and the vend
    // makes one for the new record.
    let changed = &pans[1];
    let up = w
        .call(
            Method::PATCH,
            &format!("/v1/meters/{changed}"),
            Some(&w.admin),
            Some(json!({"krn": "3"})),
        )
        .await;
    assert_eq!(up.status, StatusCode::OK);
    let a = w
        .vend(
            &w.vendor,
            "after-change",
            changed,
            json!({"type": "credit", "amount": "2"}),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert!(a.body["key_change"].get("campaign").is_none());
    assert_eq!(a.body["key_change"]["to"]["krn"], "3");
    let c = db.campaign(c.id).await.unwrap();
    assert_eq!((c.items.pending, c.items.superseded), (2, 1));

    // Bad campaigns are refused with the field at fault.
    for (mut n, field) in [
        (rollover(&w, "", 10), "name"),
        (rollover(&w, "by-list", 10), "name"),
        (rollover(&w, "12", 10), "name"),
        (rollover(&w, "zero", 0), "chunk_size"),
        (
            NewCampaign {
                target: CampaignTarget::default(),
                ..rollover(&w, "nothing", 10)
            },
            "target",
        ),
    ] {
        n.selection.pans = None;
        match db.create_campaign(&n).await {
            Err(VendError::Invalid { fields, .. }) => {
                assert!(fields.contains_key(field), "{fields:?}")
            }
            other => panic!("{field}: {other:?}"),
        }
    }
}

async fn a_target_key_the_module_does_not_hold_stops_the_run_before_anything_changes(
    engine: Engine,
) {
    let w = world(engine).await;
    let db = w.state.db();
    // DKGA04 meters (SGC sgc04, KRN 1, base 2014); the module holds no KRN 2 for sgc04.
    let mut key = record(w.sgc04, "1", BaseDate::Y2014);
    key.derivation = "04".parse().unwrap();
    let pans: Vec<String> = (0..5).map(|i| pan(40_000 + i)).collect();
    db.import_meters(&pans.iter().map(|p| meter(p, key)).collect::<Vec<_>>())
        .await
        .unwrap();
    let mut new = rollover(&w, "no-key", 2);
    new.selection = CampaignSelection {
        supply_group: Some(w.sgc04),
        ..CampaignSelection::default()
    };
    new.target.base_date = None;
    let c = db.create_campaign(&new).await.unwrap();
    let result = db
        .run_campaign(
            c.id,
            w.state.security_module(),
            &AtomicBool::new(false),
            |_| {},
        )
        .await;
    match result {
        Err(VendError::Invalid { fields, .. }) => {
            assert!(fields["target"].contains("revision 2"), "{fields:?}");
            assert!(fields["target"].contains("sts sm import"), "{fields:?}");
        }
        other => panic!("{other:?}"),
    }
    let c = db.campaign(c.id).await.unwrap();
    assert_eq!((c.state, c.processed), (CampaignState::Created, 0));
    assert!(items(&w, c.id).await.is_empty());
    let m = w
        .get(&format!("/v1/meters/{}", pans[0]), &w.admin)
        .await
        .body;
    assert!(m["pending_key_change"].is_null());
}

async fn a_run_beside_a_vending_server_on_the_same_stores(engine: Engine) {
    let w = world(engine).await;
    let pans = meters_on_1993(&w, 200).await;
    let buyers: Vec<String> = (0..4).map(|i| pan(60_000 + i)).collect();
    for p in &buyers {
        w.register(w.meter_body(p)).await;
    }
    // A second process's view: its own pool on the database, its own security module
    // instance on the same SM store.
    let (other, _) = w.restarted_server().await;
    let c = other
        .db()
        .create_campaign(&rollover(&w, "beside-a-server", 10))
        .await
        .unwrap();
    let vending = {
        let router = w.router.clone();
        let (vendor, buyers) = (w.vendor.clone(), buyers.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for round in 0..25 {
                let calls = buyers.iter().map(|p| {
                    let (router, vendor, p) = (router.clone(), vendor.clone(), p.clone());
                    async move {
                        let body = json!({"request_id": format!("{p}-{round}"), "meter": p,
                                          "token": {"type": "credit", "amount": "1"}});
                        support::call(
                            &router,
                            Method::POST,
                            "/v1/vends",
                            Some(&vendor),
                            Some(body),
                        )
                        .await
                    }
                });
                for a in futures_join(calls).await {
                    statuses.push(a.status);
                }
            }
            statuses
        })
    };
    let end = other
        .db()
        .run_campaign(
            c.id,
            other.security_module(),
            &AtomicBool::new(false),
            |_| {},
        )
        .await
        .unwrap();
    let statuses = vending.await.unwrap();
    assert_eq!(end, RunEnd::Done);
    assert_eq!(statuses.len(), 100);
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    let all = items(&w, c.id).await;
    assert_eq!(all.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), pans);
    w.state.security_module().verify_audit().await.unwrap();
}

/// Awaits every future, concurrently.
async fn futures_join<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

on_both_engines!(
    rollover_sets_are_delivered_with_the_next_purchase_and_the_meter_takes_them,
    a_stopped_run_resumes_after_its_checkpoint_and_does_every_meter_once,
    items_without_a_set_say_why,
    a_target_key_the_module_does_not_hold_stops_the_run_before_anything_changes,
    a_run_beside_a_vending_server_on_the_same_stores,
);
