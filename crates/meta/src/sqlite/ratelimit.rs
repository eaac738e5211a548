//! Pull rate limits on SQLite: plans, the facts attribution reads, and the spending ledger.

use super::{backend, SqliteMeta};
use berth_core::ports::{MetaError, PlanRecord, RateLimitStore, SpentRow};
use berth_core::ratelimit::{AccountFacts, Plan};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

/// The plan of a row joined with `LEFT JOIN rate_plans p` (`has_plan` tells a missing row
/// from an unlimited plan).
fn joined_plan(row: &SqliteRow) -> Option<Plan> {
    if !row.get::<bool, _>("has_plan") {
        return None;
    }
    Plan::from_columns(row.get("pulls"), row.get("window_secs"))
}

#[async_trait::async_trait]
impl RateLimitStore for SqliteMeta {
    async fn pull_facts(&self, account: &str) -> Result<Option<AccountFacts>, MetaError> {
        let mut conn = self.read.acquire().await.map_err(backend)?;
        if let Some(org) = account.strip_prefix("org/") {
            let row = sqlx::query(
                "SELECT p.namespace IS NOT NULL AS has_plan, p.pulls, p.window_secs \
                 FROM organizations o LEFT JOIN rate_plans p ON p.namespace = o.name \
                 WHERE o.name = ?",
            )
            .bind(org)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
            return Ok(row.map(|row| AccountFacts {
                is_organization: true,
                plan: joined_plan(&row),
                ..AccountFacts::default()
            }));
        }
        let Some(row) = sqlx::query(
            "SELECT u.id, u.is_admin, p.namespace IS NOT NULL AS has_plan, p.pulls, \
             p.window_secs FROM users u LEFT JOIN rate_plans p ON p.namespace = u.name \
             WHERE u.name = ?",
        )
        .bind(account)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        else {
            return Ok(None);
        };
        let user_id: i64 = row.get("id");
        let organizations = sqlx::query(
            "SELECT DISTINCT o.name, p.namespace IS NOT NULL AS has_plan, p.pulls, \
             p.window_secs FROM team_members m JOIN teams t ON t.id = m.team_id \
             JOIN organizations o ON o.id = t.org_id \
             LEFT JOIN rate_plans p ON p.namespace = o.name \
             WHERE m.user_id = ? ORDER BY o.name",
        )
        .bind(user_id)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?
        .iter()
        .map(|org| (org.get::<String, _>("name"), joined_plan(org)))
        .collect();
        Ok(Some(AccountFacts {
            is_site_admin: row.get("is_admin"),
            is_organization: false,
            plan: joined_plan(&row),
            organizations,
        }))
    }

    async fn set_plan(
        &self,
        account: &str,
        plan: Plan,
        by: &str,
        now: i64,
    ) -> Result<bool, MetaError> {
        let (pulls, window) = plan.columns();
        let done = sqlx::query(
            "INSERT INTO rate_plans (namespace, pulls, window_secs, updated_by, updated_at) \
             SELECT name, ?, ?, ?, ? FROM namespaces WHERE name = ? \
             ON CONFLICT(namespace) DO UPDATE SET pulls = excluded.pulls, \
             window_secs = excluded.window_secs, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
        )
        .bind(pulls)
        .bind(window)
        .bind(by)
        .bind(now)
        .bind(account)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn clear_plan(&self, account: &str) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM rate_plans WHERE namespace = ?")
            .bind(account)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn plans(&self) -> Result<Vec<PlanRecord>, MetaError> {
        let rows = sqlx::query(
            "SELECT p.namespace, p.pulls, p.window_secs, p.updated_by, p.updated_at, \
             n.org_id IS NOT NULL AS is_org FROM rate_plans p \
             JOIN namespaces n ON n.name = p.namespace ORDER BY p.namespace",
        )
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(PlanRecord {
                    account: row.get("namespace"),
                    is_organization: row.get("is_org"),
                    plan: Plan::from_columns(row.get("pulls"), row.get("window_secs"))?,
                    updated_by: row.get("updated_by"),
                    updated_at: row.get("updated_at"),
                })
            })
            .collect())
    }

    async fn exchange_spent(
        &self,
        node: &str,
        spent: &[(String, i64)],
        at_us: i64,
        after_seq: i64,
        forget_before_us: i64,
    ) -> Result<(Vec<SpentRow>, i64), MetaError> {
        if !spent.is_empty() {
            // One transaction: SQLite's single writer gives sequence numbers in commit
            // order, so a reader that saw seq N has seen every row below it.
            let mut tx = super::begin_write(&self.write).await?;
            for (key, advance) in spent {
                sqlx::query(
                    "INSERT INTO rate_limit_ledger (node, key, at_us, advance_us) \
                     VALUES (?, ?, ?, ?)",
                )
                .bind(node)
                .bind(key)
                .bind(at_us)
                .bind(advance)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            sqlx::query("DELETE FROM rate_limit_ledger WHERE at_us < ?")
                .bind(forget_before_us)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
        }
        let mut conn = self.read.acquire().await.map_err(backend)?;
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(backend)?;
        let rows = sqlx::query(
            "SELECT key, at_us, advance_us FROM rate_limit_ledger \
             WHERE seq > ? AND node <> ? AND at_us >= ? ORDER BY seq",
        )
        .bind(after_seq)
        .bind(node)
        .bind(forget_before_us)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let last: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM rate_limit_ledger")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let rows = rows
            .iter()
            .map(|row| SpentRow {
                key: row.get("key"),
                at_us: row.get("at_us"),
                advance_us: row.get("advance_us"),
            })
            .collect();
        Ok((rows, last.unwrap_or(after_seq).max(after_seq)))
    }
}
