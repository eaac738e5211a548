//! Pull rate limits on PostgreSQL: plans, the facts attribution reads, and the spending
//! ledger through which the nodes of a cluster share what each spent.
//!
//! Ledger rows are appended under an advisory lock ([`LEDGER_LOCK`]): identity values are
//! handed out when a row is inserted, not when it commits, so without the lock a reader
//! could see row 8 before row 7 commits, move past 7 and never see it. With it, sequence
//! numbers are given in commit order, as SQLite's single writer gives them.

use super::{backend, lock_name, PostgresMeta};
use berth_core::ports::{MetaError, PlanRecord, RateLimitStore, SpentRow};
use berth_core::ratelimit::{AccountFacts, Plan};
use sqlx::postgres::PgRow;
use sqlx::Row;

/// Held from the first append of a transaction to its commit.
const LEDGER_LOCK: &str = "berth:rate-limit-ledger";

/// The plan of a row joined with `LEFT JOIN rate_plans p` (`has_plan` tells a missing row
/// from an unlimited plan).
fn joined_plan(row: &PgRow) -> Option<Plan> {
    if !row.get::<bool, _>("has_plan") {
        return None;
    }
    Plan::from_columns(row.get("pulls"), row.get("window_secs"))
}

#[async_trait::async_trait]
impl RateLimitStore for PostgresMeta {
    async fn pull_facts(&self, account: &str) -> Result<Option<AccountFacts>, MetaError> {
        if let Some(org) = account.strip_prefix("org/") {
            let row = sqlx::query(
                "SELECT p.namespace IS NOT NULL AS has_plan, p.pulls, p.window_secs \
                 FROM organizations o LEFT JOIN rate_plans p ON p.namespace = o.name \
                 WHERE o.name = $1",
            )
            .bind(org)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
            return Ok(row.map(|row| AccountFacts {
                is_organization: true,
                plan: joined_plan(&row),
                ..AccountFacts::default()
            }));
        }
        // One read transaction on one snapshot: the user's plan and their organizations'.
        let mut tx = self.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        let Some(row) = sqlx::query(
            "SELECT u.id, u.is_admin, p.namespace IS NOT NULL AS has_plan, p.pulls, \
             p.window_secs FROM users u LEFT JOIN rate_plans p ON p.namespace = u.name \
             WHERE u.name = $1",
        )
        .bind(account)
        .fetch_optional(&mut *tx)
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
             WHERE m.user_id = $1 ORDER BY o.name",
        )
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?
        .iter()
        .map(|org| (org.get::<String, _>("name"), joined_plan(org)))
        .collect();
        tx.commit().await.map_err(backend)?;
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
             SELECT name, $1, $2, $3, $4 FROM namespaces WHERE name = $5 \
             ON CONFLICT (namespace) DO UPDATE SET pulls = EXCLUDED.pulls, \
             window_secs = EXCLUDED.window_secs, updated_by = EXCLUDED.updated_by, \
             updated_at = EXCLUDED.updated_at",
        )
        .bind(pulls)
        .bind(window)
        .bind(by)
        .bind(now)
        .bind(account)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn clear_plan(&self, account: &str) -> Result<bool, MetaError> {
        let done = sqlx::query("DELETE FROM rate_plans WHERE namespace = $1")
            .bind(account)
            .execute(&self.pool)
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
        .fetch_all(&self.pool)
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
            let mut tx = self.begin().await?;
            lock_name(&mut tx, LEDGER_LOCK).await?;
            let (keys, advances): (Vec<&str>, Vec<i64>) =
                spent.iter().map(|(key, adv)| (key.as_str(), *adv)).unzip();
            sqlx::query(
                "INSERT INTO rate_limit_ledger (node, key, at_us, advance_us) \
                 SELECT $1, k, $2, a FROM unnest($3::text[], $4::bigint[]) \
                 WITH ORDINALITY AS s(k, a, n) ORDER BY n",
            )
            .bind(node)
            .bind(at_us)
            .bind(&keys)
            .bind(&advances)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            sqlx::query("DELETE FROM rate_limit_ledger WHERE at_us < $1")
                .bind(forget_before_us)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
        }
        // One statement, one snapshot: the rows and the highest sequence number agree.
        let rows = sqlx::query(
            "SELECT l.key, l.at_us, l.advance_us, m.last FROM \
               (SELECT max(seq) AS last FROM rate_limit_ledger) m \
             LEFT JOIN rate_limit_ledger l \
               ON l.seq > $1 AND l.node <> $2 AND l.at_us >= $3 \
             ORDER BY l.seq",
        )
        .bind(after_seq)
        .bind(node)
        .bind(forget_before_us)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let last: Option<i64> = rows.first().and_then(|row| row.get("last"));
        let rows = rows
            .iter()
            .filter_map(|row| {
                Some(SpentRow {
                    key: row.get::<Option<String>, _>("key")?,
                    at_us: row.get("at_us"),
                    advance_us: row.get("advance_us"),
                })
            })
            .collect();
        Ok((rows, last.unwrap_or(after_seq).max(after_seq)))
    }
}
