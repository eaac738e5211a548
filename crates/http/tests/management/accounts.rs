//! User accounts through the API: who may create, list, read and change them.

use crate::support::{Berth, PASSWORD};
use serde_json::json;

#[tokio::test]
async fn site_admins_create_and_list_users() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let created = admin
        .post(
            "/api/v1/users",
            json!({ "username": "bob", "password": PASSWORD }),
        )
        .await
        .expect(201);
    assert_eq!(created.body["username"], "bob");
    assert_eq!(created.body["is_admin"], false);
    assert_eq!(created.body["has_2fa"], false);
    assert!(created.body["id"].is_i64());

    admin
        .post(
            "/api/v1/users",
            json!({ "username": "bob", "password": PASSWORD }),
        )
        .await
        .expect_error(409, "CONFLICT");
    let short = admin
        .post(
            "/api/v1/users",
            json!({ "username": "carol", "password": "short" }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(short.message().contains("8 characters"), "{}", short.text);
    admin
        .post(
            "/api/v1/users",
            json!({ "username": "Not Valid", "password": PASSWORD }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    admin
        .post(
            "/api/v1/users",
            json!({ "username": "root2", "password": PASSWORD, "is_admin": true }),
        )
        .await
        .expect(201);

    let all = admin.get("/api/v1/users").await.expect(200);
    assert_eq!(all.body["count"], 3);
    let names: Vec<&str> = all.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bob", "root2"]);
    assert!(all.body["next"].is_null() && all.body["previous"].is_null());

    let first = admin.get("/api/v1/users?page_size=2").await.expect(200);
    assert_eq!(first.body["results"].as_array().unwrap().len(), 2);
    let next = first.body["next"].as_str().expect("a next page");
    assert!(next.starts_with(&berth.url("/api/v1/users?")), "{next}");
    let path = next.trim_start_matches(&berth.url(""));
    let second = admin.get(path).await.expect(200);
    assert_eq!(second.body["results"][0]["username"], "root2");
    assert!(second.body["next"].is_null());
    assert!(second.body["previous"].as_str().unwrap().contains("page=1"));
}

#[tokio::test]
async fn other_users_cannot_list_create_or_read_accounts() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;
    berth.user("carol").await;
    bob.get("/api/v1/users").await.expect_error(403, "DENIED");
    bob.post(
        "/api/v1/users",
        json!({ "username": "mallory", "password": PASSWORD }),
    )
    .await
    .expect_error(403, "DENIED");
    bob.get("/api/v1/users/bob").await.expect(200);
    bob.get("/api/v1/users/carol")
        .await
        .expect_error(403, "DENIED");
    // Not told whether an account exists either.
    bob.get("/api/v1/users/nobody")
        .await
        .expect_error(403, "DENIED");
    berth
        .admin()
        .await
        .get("/api/v1/users/nobody")
        .await
        .expect_error(404, "NOT_FOUND");
}

#[tokio::test]
async fn users_change_their_password_but_not_their_admin_flag() {
    let berth = Berth::start().await;
    let bob = berth.user("bob").await;

    // A refused part refuses the whole change.
    bob.patch(
        "/api/v1/users/bob",
        json!({ "password": "a new password", "is_admin": true }),
    )
    .await
    .expect_error(403, "DENIED");
    berth.login("bob", PASSWORD, None).await.expect(200);
    bob.patch("/api/v1/users/bob", json!({ "password": "short" }))
        .await
        .expect_error(400, "BAD_REQUEST");

    let changed = bob
        .patch("/api/v1/users/bob", json!({ "password": "a new password" }))
        .await
        .expect(200);
    assert_eq!(changed.body["username"], "bob");
    berth
        .login("bob", PASSWORD, None)
        .await
        .expect_error(401, "UNAUTHORIZED");
    berth.login("bob", "a new password", None).await.expect(200);

    let admin = berth.admin().await;
    let promoted = admin
        .patch("/api/v1/users/bob", json!({ "is_admin": true }))
        .await
        .expect(200);
    assert_eq!(promoted.body["is_admin"], true);
    // The last site admin stays one.
    admin
        .patch("/api/v1/users/bob", json!({ "is_admin": false }))
        .await
        .expect(200);
    let last = admin
        .patch("/api/v1/users/admin", json!({ "is_admin": false }))
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(last.message().contains("last site admin"), "{}", last.text);
}
