//! The Hub ports on PostgreSQL: repository details, descriptions, stars, verified
//! publishers, the tags view, pull accounting and search.
//!
//! Search uses the `search` tsvector of each repository (name words weighted A, the short
//! description B; see migrations/postgres/0001_schema.sql) and ranks in the tiers that
//! [`SearchTier`] defines, by popularity within each, in one statement.

use super::access::{ORG_SEES, USER_SEES};
use super::{backend, PostgresMeta};
use berth_core::hub::{counts_as_pull, tally_pulls, SearchTier, SearchWords};
use berth_core::ports::{
    HubStore, MetaError, PullEvent, RepositoryInfo, SearchPage, SearchQuery, SearchSort, TagRecord,
    TagSort, Viewer, OWNERS_TEAM,
};
use berth_oci::{Platform, RepoName};
use sqlx::postgres::PgRow;
use sqlx::Row;

/// The namespace of official images.
const OFFICIAL_NAMESPACE: &str = "library";

/// What a [`RepositoryInfo`] is read from: a repository row `r` with its README and the
/// organization of its namespace (if the namespace is one), joined as [`INFO_JOINS`] does.
const INFO_COLUMNS: &str = "r.name, r.namespace, r.is_private, r.description, \
     coalesce(d.full_description, '') AS full_description, r.star_count, r.pull_count, \
     r.created_at, r.last_pushed_at, r.last_pulled_at, coalesce(o.verified, FALSE) AS verified";

const INFO_JOINS: &str = "LEFT JOIN repository_readmes d ON d.repository_id = r.id \
     LEFT JOIN organizations o ON o.name = r.namespace";

fn info_from_row(row: &PgRow) -> RepositoryInfo {
    let namespace: String = row.get("namespace");
    RepositoryInfo {
        name: row.get("name"),
        is_private: row.get("is_private"),
        description: row.get("description"),
        full_description: row.get("full_description"),
        star_count: row.get::<i64, _>("star_count").max(0) as u64,
        pull_count: row.get::<i64, _>("pull_count").max(0) as u64,
        created_at: row.get("created_at"),
        last_pushed_at: row.get("last_pushed_at"),
        last_pulled_at: row.get("last_pulled_at"),
        is_official: namespace == OFFICIAL_NAMESPACE,
        is_verified: row.get("verified"),
        namespace,
    }
}

/// The platform recorded with a manifest row, if it names one.
fn platform_from_row(row: &PgRow) -> Option<Platform> {
    Some(Platform {
        os: row.get::<Option<String>, _>("platform_os")?,
        architecture: row.get::<Option<String>, _>("platform_architecture")?,
        variant: row.get("platform_variant"),
    })
}

/// The order of a tags page; a tag never pulled sorts after every pulled one.
fn tag_order(sort: TagSort) -> &'static str {
    match sort {
        TagSort::LastPushed => "t.pushed_at DESC, t.name",
        TagSort::LastPulled => "t.last_pulled_at IS NULL, t.last_pulled_at DESC, t.name",
        TagSort::Name => "t.name",
    }
}

// Search parameters: $1 the query text, $2 the viewer's user or organization id, $3 the
// owners team's name, $4 the name-run tsquery, $5 the namespace, $6 the minimum stars,
// $7 the page size, $8 the offset, $9 the LIKE pattern of names that start with the
// query's words, $10 the any-word tsquery, $11 the token's repository patterns (LIKE).

// Who sees which repository: `access::USER_SEES` and `access::ORG_SEES`, shared with the
// listings.

const EXACT: &str = "(r.name = $1 OR r.short_name = $1)";
const NAME_RUN: &str = "r.search @@ to_tsquery('simple', $4)";
const STARTS_WITH_QUERY: &str = "(r.short_name LIKE $9 OR r.name LIKE $9)";
const ANY_WORD: &str = "r.search @@ to_tsquery('simple', $10)";

/// [`berth_core::hub::popularity`] in SQL (the expression `repositories_by_popularity`
/// indexes).
const POPULARITY: &str = "((1.0 + r.star_count) * (1.0 + r.star_count) * (1.0 + r.pull_count))";

/// The query as the statement binds it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Terms {
    text: String,
    /// The words in sequence in the name, the last as a prefix.
    name_run: String,
    /// Names that start with the words (separators between them).
    name_start: String,
    /// Any one word in the name or the description.
    any_word: String,
}

impl Terms {
    fn new(text: &str) -> Option<Terms> {
        let SearchWords { text, words } = SearchWords::parse(text)?;
        // Words are letters and digits only: nothing in them is special to tsquery or LIKE.
        let last = words.len() - 1;
        let run: Vec<String> = words
            .iter()
            .enumerate()
            .map(|(i, w)| {
                if i == last {
                    format!("'{w}':*A")
                } else {
                    format!("'{w}':A")
                }
            })
            .collect();
        let any: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        Some(Terms {
            name_run: run.join(" <-> "),
            name_start: format!("{}%", words.join("%")),
            any_word: any.join(" | "),
            text,
        })
    }
}

/// A token's repository pattern (`*` any run of characters) as a LIKE pattern.
fn like_pattern(pattern: &str) -> String {
    let mut like = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '*' => like.push('%'),
            '%' | '_' | '\\' => {
                like.push('\\');
                like.push(c);
            }
            c => like.push(c),
        }
    }
    like
}

/// The tier of a row as a number, best first, following [`SearchTier::ALL`].
fn tier_expression() -> String {
    let arms: Vec<String> = SearchTier::ALL
        .iter()
        .enumerate()
        .map(|(rank, tier)| {
            let condition = match tier {
                SearchTier::ExactName => EXACT.to_owned(),
                SearchTier::NameStartsWithQuery => format!("{NAME_RUN} AND {STARTS_WITH_QUERY}"),
                SearchTier::QueryLaterInName => NAME_RUN.to_owned(),
                SearchTier::AnyWord => "TRUE".to_owned(),
            };
            format!("WHEN {condition} THEN {rank}")
        })
        .collect();
    format!("CASE {} END", arms.join(" "))
}

fn order(sort: SearchSort) -> String {
    match sort {
        SearchSort::Relevance => format!("{POPULARITY} DESC, r.name"),
        SearchSort::Stars => "r.star_count DESC, r.pull_count DESC, r.name".to_owned(),
        SearchSort::Pulls => "r.pull_count DESC, r.star_count DESC, r.name".to_owned(),
        // Never pushed (NULL) sorts last, as in SQLite.
        SearchSort::LastUpdated => "r.last_pushed_at DESC NULLS LAST, r.name".to_owned(),
    }
}

fn conditions(query: &SearchQuery, terms: Option<&Terms>) -> Vec<String> {
    let mut conditions = Vec::new();
    match query.viewer {
        Viewer::Everything => {}
        Viewer::Public => conditions.push("NOT r.is_private".to_owned()),
        Viewer::User(_) => conditions.push(USER_SEES.to_owned()),
        Viewer::Organization(_) => conditions.push(ORG_SEES.to_owned()),
    }
    if terms.is_some() {
        conditions.push(format!("({EXACT} OR {NAME_RUN} OR {ANY_WORD})"));
    }
    if query.official_only {
        conditions.push(format!("r.namespace = '{OFFICIAL_NAMESPACE}'"));
    }
    if query.namespace.is_some() {
        conditions.push("r.namespace = $5".to_owned());
    }
    if query.min_stars > 0 {
        conditions.push("r.star_count >= $6".to_owned());
    }
    if !query.name_patterns.is_empty() {
        conditions.push("r.name LIKE ANY($11)".to_owned());
    }
    conditions
}

fn bind_all<'q>(
    sql: &'q str,
    query: &'q SearchQuery,
    terms: Option<&'q Terms>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let viewer_id = match query.viewer {
        Viewer::User(id) | Viewer::Organization(id) => Some(id),
        Viewer::Everything | Viewer::Public => None,
    };
    let patterns: Vec<String> = query
        .name_patterns
        .iter()
        .map(|p| like_pattern(p))
        .collect();
    sqlx::query(sql)
        .bind(terms.map_or("", |t| t.text.as_str()))
        .bind(viewer_id)
        .bind(OWNERS_TEAM)
        .bind(terms.map_or("", |t| t.name_run.as_str()))
        .bind(query.namespace.as_deref())
        .bind(i64::try_from(query.min_stars).unwrap_or(i64::MAX))
        .bind(i64::from(query.limit))
        .bind(i64::from(query.offset))
        .bind(terms.map_or("", |t| t.name_start.as_str()))
        .bind(terms.map_or("", |t| t.any_word.as_str()))
        .bind(patterns)
}

async fn search(pool: &sqlx::PgPool, query: &SearchQuery) -> Result<SearchPage, MetaError> {
    let text = query.text.trim();
    let terms = Terms::new(text);
    if query.limit == 0 || (!text.is_empty() && terms.is_none()) {
        return Ok(SearchPage {
            total: 0,
            results: Vec::new(),
        });
    }
    let conditions = conditions(query, terms.as_ref());
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let count_sql = format!("SELECT count(*) FROM repositories r {filter}");
    let total: i64 = bind_all(&count_sql, query, terms.as_ref())
        .fetch_one(pool)
        .await
        .map_err(backend)?
        .get(0);
    let total = total.max(0) as u64;
    if u64::from(query.offset) >= total {
        return Ok(SearchPage {
            total,
            results: Vec::new(),
        });
    }
    let ranked = match (terms.is_some(), query.sort) {
        (true, SearchSort::Relevance) => format!("{}, {}", tier_expression(), order(query.sort)),
        _ => order(query.sort),
    };
    let page_sql = format!(
        "SELECT {INFO_COLUMNS} FROM repositories r {INFO_JOINS} {filter} \
         ORDER BY {ranked} LIMIT $7 OFFSET $8"
    );
    let rows = bind_all(&page_sql, query, terms.as_ref())
        .fetch_all(pool)
        .await
        .map_err(backend)?;
    Ok(SearchPage {
        total,
        results: rows.iter().map(info_from_row).collect(),
    })
}

#[async_trait::async_trait]
impl HubStore for PostgresMeta {
    async fn repository_info(&self, repo: &RepoName) -> Result<Option<RepositoryInfo>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {INFO_COLUMNS} FROM repositories r {INFO_JOINS} WHERE r.name = $1"
        ))
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(info_from_row))
    }

    async fn set_descriptions(
        &self,
        repo: &RepoName,
        description: Option<&str>,
        full_description: Option<&str>,
    ) -> Result<bool, MetaError> {
        let mut tx = self.begin().await?;
        let repo_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1 FOR UPDATE")
                .bind(repo.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok(false);
        };
        if let Some(description) = description {
            sqlx::query("UPDATE repositories SET description = $1 WHERE id = $2")
                .bind(description)
                .bind(repo_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        match full_description {
            None => {}
            Some("") => {
                sqlx::query("DELETE FROM repository_readmes WHERE repository_id = $1")
                    .bind(repo_id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            Some(readme) => {
                sqlx::query(
                    "INSERT INTO repository_readmes (repository_id, full_description) \
                     VALUES ($1, $2) ON CONFLICT (repository_id) \
                     DO UPDATE SET full_description = EXCLUDED.full_description",
                )
                .bind(repo_id)
                .bind(readme)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn star(&self, user_id: i64, repo: &RepoName, now: i64) -> Result<bool, MetaError> {
        // The star count follows through a trigger on `stars`.
        let done = sqlx::query(
            "INSERT INTO stars (user_id, repository_id, created_at) \
             SELECT $1, id, $3 FROM repositories WHERE name = $2 \
             ON CONFLICT (user_id, repository_id) DO NOTHING",
        )
        .bind(user_id)
        .bind(repo.as_str())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn unstar(&self, user_id: i64, repo: &RepoName) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "DELETE FROM stars WHERE user_id = $1 \
             AND repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(user_id)
        .bind(repo.as_str())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn has_starred(&self, user_id: i64, repo: &RepoName) -> Result<bool, MetaError> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM stars s JOIN repositories r ON r.id = s.repository_id \
             WHERE s.user_id = $1 AND r.name = $2)",
        )
        .bind(user_id)
        .bind(repo.as_str())
        .fetch_one(&self.pool)
        .await
        .map_err(backend)
    }

    async fn record_pulls(&self, pulls: &[PullEvent]) -> Result<(), MetaError> {
        if pulls.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        // Repositories in name order (the tally's), so two nodes flushing at once lock
        // their rows in the same order and never deadlock.
        for (repo, manifests) in tally_pulls(pulls) {
            // The repository row first, then its tags, as a push takes them.
            let repo_id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE")
                    .bind(repo)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(backend)?;
            // Deleted since the pull: nothing left to count against.
            let Some(repo_id) = repo_id else { continue };
            let mut counted = 0u64;
            let mut last_at = i64::MIN;
            for ((digest, tag), tally) in manifests {
                last_at = last_at.max(tally.last_at);
                let by_tag = tag.is_some();
                let child_of_an_index = !by_tag
                    && sqlx::query_scalar::<_, bool>(
                        "SELECT EXISTS (SELECT 1 FROM manifest_children c \
                         JOIN repository_manifests rm ON rm.digest = c.manifest \
                         WHERE c.child = $1 AND rm.repository_id = $2)",
                    )
                    .bind(&digest)
                    .bind(repo_id)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(backend)?;
                if counts_as_pull(by_tag, child_of_an_index) {
                    counted += tally.pulls;
                }
                let touched = match tag {
                    Some(tag) => sqlx::query(
                        "UPDATE tags SET last_pulled_at = greatest(last_pulled_at, $1) \
                         WHERE repository_id = $2 AND name = $3",
                    )
                    .bind(tally.last_at)
                    .bind(repo_id)
                    .bind(tag),
                    None => sqlx::query(
                        "UPDATE tags SET last_pulled_at = greatest(last_pulled_at, $1) \
                         WHERE repository_id = $2 AND (digest = $3 \
                         OR digest IN (SELECT manifest FROM manifest_children WHERE child = $3))",
                    )
                    .bind(tally.last_at)
                    .bind(repo_id)
                    .bind(&digest),
                };
                touched.execute(&mut *tx).await.map_err(backend)?;
                // The manifest's own last pull, which retention reads for manifests no tag
                // points at.
                sqlx::query(
                    "UPDATE repository_manifests SET last_pulled_at = greatest(last_pulled_at, $1) \
                     WHERE repository_id = $2 AND digest = $3",
                )
                .bind(tally.last_at)
                .bind(repo_id)
                .bind(&digest)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
            sqlx::query(
                "UPDATE repositories SET pull_count = pull_count + $1, \
                 last_pulled_at = greatest(last_pulled_at, $2) WHERE id = $3",
            )
            .bind(i64::try_from(counted).unwrap_or(i64::MAX))
            .bind(last_at)
            .bind(repo_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, MetaError> {
        search(&self.pool, query).await
    }

    async fn set_org_verified(&self, org: &str, verified: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE organizations SET verified = $1 WHERE name = $2")
            .bind(verified)
            .bind(org)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn org_verified(&self, org: &str) -> Result<bool, MetaError> {
        let verified: Option<bool> =
            sqlx::query_scalar("SELECT verified FROM organizations WHERE name = $1")
                .bind(org)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(verified.unwrap_or(false))
    }

    async fn tag_records(
        &self,
        repo: &RepoName,
        sort: TagSort,
        offset: u32,
        limit: u32,
    ) -> Result<(u64, Vec<TagRecord>), MetaError> {
        let repo_id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM repositories WHERE name = $1")
                .bind(repo.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        let Some(repo_id) = repo_id else {
            return Ok((0, Vec::new()));
        };
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM tags WHERE repository_id = $1")
            .bind(repo_id)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        let rows = sqlx::query(&format!(
            "SELECT t.name, t.digest, COALESCE(rm.media_type, m.media_type) AS media_type, \
             m.body, t.pushed_at, t.last_pulled_at, \
             m.platform_os, m.platform_architecture, m.platform_variant \
             FROM tags t JOIN manifests m ON m.digest = t.digest \
             JOIN repository_manifests rm \
               ON rm.repository_id = t.repository_id AND rm.digest = t.digest \
             WHERE t.repository_id = $1 ORDER BY {} LIMIT $2 OFFSET $3",
            tag_order(sort)
        ))
        .bind(repo_id)
        .bind(i64::from(limit))
        .bind(i64::from(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let tags = rows
            .iter()
            .map(|row| {
                let digest: String = row.get("digest");
                Ok(TagRecord {
                    name: row.get("name"),
                    digest: digest.parse().map_err(|e| {
                        MetaError::Backend(format!("stored digest {digest:?} is invalid: {e}"))
                    })?,
                    media_type: row.get("media_type"),
                    body: row.get("body"),
                    platform: platform_from_row(row),
                    pushed_at: row.get("pushed_at"),
                    last_pulled_at: row.get("last_pulled_at"),
                })
            })
            .collect::<Result<_, MetaError>>()?;
        Ok((total.max(0) as u64, tags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_become_tsquery_terms_and_patterns() {
        let terms = Terms::new("  Web-Server\") OR *x ").unwrap();
        assert_eq!(terms.text, "web-server\") or *x");
        assert_eq!(
            terms.name_run,
            "'web':A <-> 'server':A <-> 'or':A <-> 'x':*A"
        );
        assert_eq!(terms.name_start, "web%server%or%x%");
        assert_eq!(terms.any_word, "'web' | 'server' | 'or' | 'x'");
        assert_eq!(Terms::new(" /-/ "), None);
    }

    #[test]
    fn patterns_keep_only_the_star_special() {
        assert_eq!(like_pattern("alice/*"), "alice/%");
        assert_eq!(like_pattern("a_b%c\\*"), "a\\_b\\%c\\\\%");
    }
}
