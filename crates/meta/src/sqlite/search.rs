//! Repository search on SQLite: matches from the full-text index, ranked in tiers (exact
//! name, then names that start with the query's words, then names with them in sequence
//! later on, then any word in the name or the description) and by popularity within each,
//! filtered to what the viewer may see.
//!
//! The cost is what is read per candidate, so each tier is read the cheaper of two ways:
//! few matches are read and sorted outright; many are found by walking the index of the
//! order asked and stopping after a page. The total is counted in the full-text index
//! wherever no repository row needs checking (public matches carry a `public` word), and
//! the README and the organization are read for the rows of the page only.

use super::access::{ORG_HELD_IDS, ORG_SEES, USER_HELD_IDS, USER_SEES};
use super::backend;
use super::hub::{info_from_row, INFO_COLUMNS, INFO_JOINS};
use berth_core::hub::{SearchTier, SearchWords};
use berth_core::ports::{MetaError, SearchPage, SearchQuery, SearchSort, Viewer, OWNERS_TEAM};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Row, Sqlite, SqlitePool};

/// [`berth_core::hub::popularity`] in SQL, without needing SQLite's optional math
/// functions. The same expression is indexed (0005_hub.sql).
const POPULARITY: &str = "((1.0 + r.star_count) * (1.0 + r.star_count) * (1.0 + r.pull_count))";

// Parameters every statement below shares: ?1 the query text, ?2 the viewer's user or
// organization id and ?3 the owners team's name (as the visibility filters expect), ?4 the
// statement's full-text expression, ?5 the namespace, ?6 the minimum stars, ?7 the page
// size, ?8 the offset, ?9 the pattern of names that start with the query, and from ?10 on
// the token's repository patterns.
const FIRST_PATTERN_PARAMETER: usize = 10;

/// The whole name or the name after its namespace is the query (both indexed).
const EXACT: &str = "(r.name = ?1 OR r.short_name = ?1)";

/// Not the exact name, and the name or the name after its namespace starts with the query's
/// words (GLOB ?9): `redis-tools` for `redis`.
const STARTS_WITH_QUERY: &str = "NOT (r.name = ?1 OR r.short_name = ?1) \
     AND (r.short_name GLOB ?9 OR r.name GLOB ?9)";

/// Neither the exact name nor one that starts with the query: `my-redis` for `redis`.
const QUERY_LATER_IN_NAME: &str = "NOT (r.name = ?1 OR r.short_name = ?1) \
     AND NOT (r.short_name GLOB ?9 OR r.name GLOB ?9)";

/// Candidates from the full-text index; CROSS JOIN keeps SQLite from turning the join
/// around and evaluating the full-text query once per repository.
const MATCHES: &str = "repository_search f CROSS JOIN repositories r ON r.id = f.rowid";

/// The query text as the statements use it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Terms {
    /// Lowercased and trimmed (names are lowercase).
    text: String,
    /// The query's words in sequence in the name, the last one as a prefix (every name that
    /// starts with the query, and every exact match, is one of these).
    name_runs: String,
    /// A GLOB pattern for names that start with the query's words. Words are letters and
    /// digits only, so none is special to GLOB; the `*` between them stands for the
    /// separators a name has there (`-`, `_`, `.`, `/`), the full-text condition it is
    /// always paired with having already put the words in sequence.
    name_start: String,
    /// Any one word in the name or the description.
    any_word: String,
}

impl Terms {
    /// None when the text has no words (only separators): nothing can match it.
    fn new(text: &str) -> Option<Terms> {
        let SearchWords { text, words } = SearchWords::parse(text)?;
        let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
        Some(Terms {
            name_runs: format!("name : \"{}\" *", words.join(" ")),
            name_start: format!("{}*", words.join("*")),
            // Only these columns: `visibility` holds words too.
            any_word: format!("{{name description}} : ({})", quoted.join(" OR ")),
            text,
        })
    }

    fn matching(&self) -> String {
        format!("({}) OR ({})", self.name_runs, self.any_word)
    }
}

/// A pattern where only `*` is special, as SQLite's GLOB reads it (`?` and `[` made literal).
fn glob_pattern(pattern: &str) -> String {
    let mut glob = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        match c {
            '[' => glob.push_str("[[]"),
            '?' => glob.push_str("[?]"),
            c => glob.push(c),
        }
    }
    glob
}

/// The order within a tier (relevance) or of all matches (the other sorts, which replace
/// relevance), and the index that holds the repositories in that order. For equal stars,
/// popularity orders like pulls and the other way round, so the indexes serve both.
fn order(sort: SearchSort) -> (String, &'static str) {
    match sort {
        SearchSort::Relevance => (
            format!("{POPULARITY} DESC, r.name"),
            "repositories_by_popularity",
        ),
        SearchSort::Stars => (
            "r.star_count DESC, r.pull_count DESC, r.name".to_owned(),
            "repositories_by_stars",
        ),
        SearchSort::Pulls => (
            "r.pull_count DESC, r.star_count DESC, r.name".to_owned(),
            "repositories_by_pulls",
        ),
        // Never pushed (NULL) sorts last.
        SearchSort::LastUpdated => (
            "r.last_pushed_at DESC, r.name".to_owned(),
            "repositories_by_last_push",
        ),
    }
}

/// The filters asked for, as conditions on the repository row `r`.
fn filters(query: &SearchQuery) -> Vec<String> {
    let mut filters = Vec::new();
    if query.official_only {
        filters.push("r.namespace = 'library'".to_owned());
    }
    if query.namespace.is_some() {
        filters.push("r.namespace = ?5".to_owned());
    }
    if query.min_stars > 0 {
        filters.push("r.star_count >= ?6".to_owned());
    }
    if !query.name_patterns.is_empty() {
        let any: Vec<String> = (0..query.name_patterns.len())
            .map(|i| format!("r.name GLOB ?{}", FIRST_PATTERN_PARAMETER + i))
            .collect();
        filters.push(format!("({})", any.join(" OR ")));
    }
    filters
}

/// Filters that confine the search to one namespace or to a token's repositories, which
/// the name indexes then find directly: SQLite picks the way, not a walk in order.
fn scoped(query: &SearchQuery) -> bool {
    query.namespace.is_some() || query.official_only || !query.name_patterns.is_empty()
}

fn where_all(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    }
}

/// A full-text expression narrowed to public or private repositories.
fn with_visibility(expression: &str, public: bool) -> String {
    let word = if public { "public" } else { "private" };
    format!("({expression}) AND visibility : {word}")
}

/// One statement to run, with the full-text expression it takes as ?4 and its own page.
#[derive(Debug)]
struct Statement {
    sql: String,
    full_text: Option<String>,
    limit: u32,
    offset: u32,
}

/// A run of results in one order: a relevance tier, or every match for the other sorts.
#[derive(Debug, Clone)]
struct Segment {
    /// The candidates, from the full-text index; None: every repository.
    full_text: Option<String>,
    /// A further condition on the repository row `r`.
    condition: Option<&'static str>,
}

/// The segments a page is taken from, in order.
fn segments(query: &SearchQuery, terms: Option<&Terms>) -> Vec<Segment> {
    let Some(terms) = terms else {
        return vec![Segment {
            full_text: None,
            condition: None,
        }];
    };
    if query.sort != SearchSort::Relevance {
        return vec![Segment {
            full_text: Some(terms.matching()),
            condition: None,
        }];
    }
    SearchTier::ALL
        .iter()
        .map(|tier| match tier {
            SearchTier::ExactName => Segment {
                full_text: None,
                condition: Some(EXACT),
            },
            SearchTier::NameStartsWithQuery => Segment {
                full_text: Some(terms.name_runs.clone()),
                condition: Some(STARTS_WITH_QUERY),
            },
            SearchTier::QueryLaterInName => Segment {
                full_text: Some(terms.name_runs.clone()),
                condition: Some(QUERY_LATER_IN_NAME),
            },
            SearchTier::AnyWord => Segment {
                full_text: Some(format!("({}) NOT ({})", terms.any_word, terms.name_runs)),
                condition: None,
            },
        })
        .collect()
}

/// How a segment's page is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Read every candidate and sort: for few candidates.
    Sort,
    /// Walk the index of the order asked, testing each repository against the candidates,
    /// until the page is full: for many. With a scope (a namespace, a token's repositories)
    /// the repositories in scope are tested instead, found through their indexes.
    Walk,
}

/// Walking costs about a page's worth of rows divided by the share of repositories that
/// match; sorting costs every match. Walk when that is fewer rows.
fn strategy(matches: u64, repositories: u64, offset: u32, limit: u32) -> Strategy {
    let wanted = u64::from(offset) + u64::from(limit);
    if matches.saturating_mul(matches) > wanted.saturating_mul(repositories) {
        Strategy::Walk
    } else {
        Strategy::Sort
    }
}

/// The visibility conditions on `r` for a page statement; for anonymous callers a
/// full-text expression already leaves the private repositories out.
fn visibility(query: &SearchQuery, full_text: bool) -> Option<String> {
    match query.viewer {
        Viewer::Everything => None,
        Viewer::Public if full_text => None,
        Viewer::Public => Some("r.is_private = 0".to_owned()),
        Viewer::User(_) => Some(USER_SEES.to_owned()),
        Viewer::Organization(_) => Some(ORG_SEES.to_owned()),
    }
}

/// The full-text expression a segment's statements use for this viewer.
fn viewer_full_text(query: &SearchQuery, segment: &Segment) -> Option<String> {
    segment.full_text.as_ref().map(|e| match query.viewer {
        Viewer::Public => with_visibility(e, true),
        _ => e.clone(),
    })
}

fn conditions(query: &SearchQuery, segment: &Segment) -> Vec<String> {
    let mut conditions: Vec<String> = visibility(query, segment.full_text.is_some())
        .into_iter()
        .collect();
    conditions.extend(segment.condition.map(str::to_owned));
    conditions.extend(filters(query));
    conditions
}

/// One page of a segment, read with `strategy`.
fn page_statement(
    query: &SearchQuery,
    segment: &Segment,
    strategy: Strategy,
    offset: u32,
    limit: u32,
) -> Statement {
    let full_text = viewer_full_text(query, segment);
    let mut conditions = conditions(query, segment);
    let (order, index) = order(query.sort);
    let source = match (&full_text, strategy) {
        (None, _) if segment.condition.is_some() || scoped(query) => {
            // Few rows through the indexes the conditions name: SQLite picks them.
            "repositories r".to_owned()
        }
        (None, _) => format!("repositories r INDEXED BY {index}"),
        (Some(_), Strategy::Sort) => {
            conditions.insert(0, "repository_search MATCH ?4".to_owned());
            MATCHES.to_owned()
        }
        (Some(_), Strategy::Walk) => {
            conditions.insert(
                0,
                "r.id IN (SELECT rowid FROM repository_search WHERE repository_search MATCH ?4)"
                    .to_owned(),
            );
            if scoped(query) {
                "repositories r".to_owned()
            } else {
                format!("repositories r INDEXED BY {index}")
            }
        }
    };
    let filter = where_all(&conditions);
    // CROSS JOIN: the page's rows are looked up, rather than every repository walked in
    // order and matched against the page (which SQLite otherwise prefers to a small sort).
    Statement {
        sql: format!(
            "SELECT {INFO_COLUMNS} FROM \
             (SELECT r.id AS id FROM {source} {filter} ORDER BY {order} LIMIT ?7 OFFSET ?8) \
             AS page CROSS JOIN repositories r ON r.id = page.id {INFO_JOINS} ORDER BY {order}"
        ),
        full_text,
        limit,
        offset,
    }
}

/// How many repositories of a segment the viewer may see.
fn segment_count_statement(query: &SearchQuery, segment: &Segment) -> Statement {
    let full_text = viewer_full_text(query, segment);
    let mut conditions = conditions(query, segment);
    let source = if full_text.is_some() {
        conditions.insert(0, "repository_search MATCH ?4".to_owned());
        MATCHES
    } else {
        "repositories r"
    };
    Statement {
        sql: format!("SELECT count(*) FROM {source} {}", where_all(&conditions)),
        full_text,
        limit: 0,
        offset: 0,
    }
}

/// The parts of what a viewer sees, counted apart: everything, the public repositories, and
/// the private ones the viewer holds something on (given by the query listing their ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Everything,
    Public,
    Held(&'static str),
}

fn parts(viewer: Viewer) -> Vec<Part> {
    match viewer {
        Viewer::Everything => vec![Part::Everything],
        Viewer::Public => vec![Part::Public],
        Viewer::User(_) => vec![Part::Public, Part::Held(USER_HELD_IDS)],
        Viewer::Organization(_) => vec![Part::Public, Part::Held(ORG_HELD_IDS)],
    }
}

/// Statements whose counts add up to the number of matches the viewer may see.
fn total_statements(query: &SearchQuery, terms: Option<&Terms>) -> Vec<Statement> {
    let filters = filters(query);
    parts(query.viewer)
        .into_iter()
        .map(|part| {
            let mut conditions = filters.clone();
            let full_text = terms.map(|terms| match part {
                Part::Everything => terms.matching(),
                Part::Public => with_visibility(&terms.matching(), true),
                Part::Held(_) => with_visibility(&terms.matching(), false),
            });
            let sql = match (part, &full_text) {
                // Nothing to check on repository rows: the index alone counts.
                (Part::Everything | Part::Public, Some(_)) if conditions.is_empty() => {
                    "SELECT count(*) FROM repository_search WHERE repository_search MATCH ?4"
                        .to_owned()
                }
                (Part::Everything | Part::Public, Some(_)) => format!(
                    "SELECT count(*) FROM {MATCHES} WHERE repository_search MATCH ?4 AND {}",
                    conditions.join(" AND ")
                ),
                (Part::Everything | Part::Public, None) => {
                    if part == Part::Public {
                        conditions.push("r.is_private = 0".to_owned());
                    }
                    format!(
                        "SELECT count(*) FROM repositories r {}",
                        where_all(&conditions)
                    )
                }
                // What the viewer holds is usually far less than what matches: start there.
                (Part::Held(ids), full_text) => {
                    conditions.push("r.is_private = 1".to_owned());
                    if full_text.is_some() {
                        conditions.push(
                            "r.id IN (SELECT rowid FROM repository_search \
                             WHERE repository_search MATCH ?4)"
                                .to_owned(),
                        );
                    }
                    format!(
                        "SELECT count(*) FROM ({ids}) AS held \
                         CROSS JOIN repositories r ON r.id = held.id {}",
                        where_all(&conditions)
                    )
                }
            };
            Statement {
                sql,
                full_text,
                limit: 0,
                offset: 0,
            }
        })
        .collect()
}

fn bind_all<'q>(
    statement: &'q Statement,
    query: &'q SearchQuery,
    terms: Option<&'q Terms>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    let text = terms.map_or("", |t| t.text.as_str());
    let viewer_id = match query.viewer {
        Viewer::User(id) | Viewer::Organization(id) => Some(id),
        Viewer::Everything | Viewer::Public => None,
    };
    let mut bound = sqlx::query(&statement.sql)
        .bind(text)
        .bind(viewer_id)
        .bind(OWNERS_TEAM)
        .bind(statement.full_text.as_deref())
        .bind(query.namespace.as_deref())
        .bind(i64::try_from(query.min_stars).unwrap_or(i64::MAX))
        .bind(i64::from(statement.limit))
        .bind(i64::from(statement.offset))
        .bind(terms.map(|t| t.name_start.as_str()));
    for pattern in &query.name_patterns {
        bound = bound.bind(glob_pattern(pattern));
    }
    bound
}

async fn count(
    read: &SqlitePool,
    statement: &Statement,
    query: &SearchQuery,
    terms: Option<&Terms>,
) -> Result<u64, MetaError> {
    let count: i64 = bind_all(statement, query, terms)
        .fetch_one(read)
        .await
        .map_err(backend)?
        .get(0);
    Ok(count.max(0) as u64)
}

/// Candidates of a full-text expression, before visibility and filters: what decides how
/// a segment is read.
async fn candidates(read: &SqlitePool, full_text: &str) -> Result<u64, MetaError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM repository_search WHERE repository_search MATCH ?",
    )
    .bind(full_text)
    .fetch_one(read)
    .await
    .map_err(backend)?;
    Ok(count.max(0) as u64)
}

pub(super) async fn run(read: &SqlitePool, query: &SearchQuery) -> Result<SearchPage, MetaError> {
    let text = query.text.trim();
    let terms = Terms::new(text);
    if query.limit == 0 || (!text.is_empty() && terms.is_none()) {
        return Ok(SearchPage {
            total: 0,
            results: Vec::new(),
        });
    }
    let mut total = 0;
    for statement in total_statements(query, terms.as_ref()) {
        total += count(read, &statement, query, terms.as_ref()).await?;
    }
    if u64::from(query.offset) >= total {
        return Ok(SearchPage {
            total,
            results: Vec::new(),
        });
    }
    let repositories: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM repositories")
        .fetch_one(read)
        .await
        .map_err(backend)?;
    let repositories = repositories.max(0) as u64;

    // Fill the page from the segments in order; a segment that ends before the page starts
    // is counted so the offset into the next one is known.
    let (mut offset, mut limit) = (query.offset, query.limit);
    let segments = segments(query, terms.as_ref());
    // Matches not yet put in an earlier segment: an estimate of a segment's candidates that
    // spares counting them when the whole search is small.
    let mut unplaced = total;
    let mut rows: Vec<SqliteRow> = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        if limit == 0 {
            break;
        }
        let strategy = match viewer_full_text(query, segment) {
            None => Strategy::Sort,
            // Few repositories in scope: each is tested against the matches.
            Some(_) if scoped(query) => Strategy::Walk,
            Some(full_text) => {
                let small = strategy(unplaced, repositories, offset, limit) == Strategy::Sort;
                let candidates = if small || i + 1 == segments.len() {
                    unplaced
                } else {
                    candidates(read, &full_text).await?
                };
                unplaced = unplaced.saturating_sub(candidates);
                strategy(candidates, repositories, offset, limit)
            }
        };
        let statement = page_statement(query, segment, strategy, offset, limit);
        let page = bind_all(&statement, query, terms.as_ref())
            .fetch_all(read)
            .await
            .map_err(backend)?;
        if page.is_empty() && offset > 0 {
            let seen = count(
                read,
                &segment_count_statement(query, segment),
                query,
                terms.as_ref(),
            )
            .await?;
            offset -= u32::try_from(seen).unwrap_or(u32::MAX).min(offset);
            continue;
        }
        offset = 0;
        limit -= u32::try_from(page.len()).unwrap_or(limit).min(limit);
        rows.extend(page);
    }
    Ok(SearchPage {
        total,
        results: rows.iter().map(info_from_row).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_words_become_quoted_tokens() {
        let terms = Terms::new("  Web-Server\") OR *x ").unwrap();
        assert_eq!(terms.text, "web-server\") or *x");
        assert_eq!(terms.name_runs, "name : \"web server or x\" *");
        assert_eq!(terms.name_start, "web*server*or*x*");
        assert_eq!(
            terms.any_word,
            "{name description} : (\"web\" OR \"server\" OR \"or\" OR \"x\")"
        );
        assert_eq!(Terms::new(" /-/ "), None);
    }

    #[test]
    fn patterns_keep_only_the_star_special() {
        assert_eq!(glob_pattern("alice/*"), "alice/*");
        assert_eq!(glob_pattern("a?b[c]*"), "a[?]b[[]c]*");
    }

    #[test]
    fn many_matches_are_walked_and_few_are_sorted() {
        assert_eq!(strategy(100, 100_000, 0, 25), Strategy::Sort);
        assert_eq!(strategy(20_000, 100_000, 0, 25), Strategy::Walk);
        // Deep pages walk far: sorting wins again.
        assert_eq!(strategy(20_000, 100_000, 20_000, 25), Strategy::Sort);
    }
}
