//! `SECKILL_REDIS_URL`, read once into what it names: one server, a Cluster,
//! or a master found through Sentinel (`CONTRACT.md`, "Processes").
//!
//! The redis crate reads `redis://` URLs but has no URL for Sentinel, and a
//! list of hosts is not a URL `url` can parse; so the three shapes are told
//! apart here, once, for the connection and for the checklist.

/// A `SECKILL_REDIS_URL` that names no Redis, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRedisUrl(pub String);

/// Where the sale's Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `redis://…`, `rediss://…` or `unix://…`: one server.
    Single(String),
    /// A comma-separated list of node URLs: a Redis Cluster.
    Cluster(Vec<String>),
    /// `redis+sentinel://[:password@]host:port[,host:port…]/<master name>[/<db>]`.
    Sentinel(SentinelTarget),
}

/// A master that the sentinels name, and how to talk to it.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    pub sentinels: Vec<(String, u16)>,
    pub master_name: String,
    /// The master's (and replicas') password; the sentinels are asked without one.
    pub password: Option<String>,
    pub db: i64,
}

impl std::fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelTarget")
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("db", &self.db)
            .finish()
    }
}

const SENTINEL_SCHEME: &str = "redis+sentinel://";

impl RedisTarget {
    pub fn parse(url: &str) -> Result<Self, BadRedisUrl> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix(SENTINEL_SCHEME) {
            return parse_sentinel(rest)
                .map(Self::Sentinel)
                .map_err(|why| BadRedisUrl(format!("{url:?}: {why} (set SECKILL_REDIS_URL)")));
        }
        if url.contains(',') {
            let nodes: Vec<String> =
                url.split(',').map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect();
            if let Some(bad) = nodes.iter().find(|n| !n.starts_with("redis://") && !n.starts_with("rediss://")) {
                return Err(BadRedisUrl(format!(
                    "{bad:?}: a cluster node must be a redis:// or rediss:// URL (set SECKILL_REDIS_URL)"
                )));
            }
            return Ok(Self::Cluster(nodes));
        }
        if ["redis://", "rediss://", "unix://"].iter().any(|scheme| url.starts_with(scheme)) {
            return Ok(Self::Single(url.to_owned()));
        }
        Err(BadRedisUrl(format!(
            "{url:?}: expected redis://host:port[/db], rediss://…, \
             redis+sentinel://host:port[,host:port…]/<master name>[/<db>] \
             or a comma-separated list of cluster node URLs (set SECKILL_REDIS_URL)"
        )))
    }

    /// Whether a dead master is replaced without an operator: Sentinel or Cluster.
    pub fn fails_over(&self) -> bool {
        !matches!(self, Self::Single(_))
    }
}

fn parse_sentinel(rest: &str) -> Result<SentinelTarget, String> {
    let (authority, path) = rest.split_once('/').ok_or("no master name: add /<master name> after the sentinels")?;
    let (password, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let password = userinfo.split_once(':').map_or(userinfo, |(_, p)| p);
            (Some(password.to_owned()).filter(|p| !p.is_empty()), hosts)
        }
        None => (None, authority),
    };
    let sentinels = hosts.split(',').map(parse_host_port).collect::<Result<Vec<_>, _>>()?;
    if sentinels.is_empty() {
        return Err("no sentinel address".into());
    }
    let mut segments = path.trim_end_matches('/').split('/');
    let master_name = segments.next().filter(|n| !n.is_empty()).ok_or("no master name after the sentinels")?;
    let db = match segments.next() {
        None => 0,
        Some(db) => db.parse::<i64>().ok().filter(|db| *db >= 0).ok_or(format!("{db:?} is not a database number"))?,
    };
    if segments.next().is_some() {
        return Err("expected /<master name>[/<db>] after the sentinels".into());
    }
    Ok(SentinelTarget { sentinels, master_name: master_name.to_owned(), password, db })
}

fn parse_host_port(host_port: &str) -> Result<(String, u16), String> {
    let host_port = host_port.trim();
    let (host, port) =
        host_port.rsplit_once(':').ok_or(format!("{host_port:?}: a sentinel is host:port (26379 is usual)"))?;
    let port = port.parse::<u16>().ok().filter(|p| *p > 0).ok_or(format!("{host_port:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{host_port:?}: no host"));
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(url: &str) -> SentinelTarget {
        match RedisTarget::parse(url).unwrap() {
            RedisTarget::Sentinel(t) => t,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn sentinel_urls_name_the_sentinels_the_master_and_the_db() {
        let t = sentinel("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/seckill");
        assert_eq!(t.sentinels, vec![("10.0.0.1".into(), 26379), ("10.0.0.2".into(), 26380)]);
        assert_eq!((t.master_name.as_str(), t.db, t.password), ("seckill", 0, None));

        let t = sentinel("redis+sentinel://:s3cret@h:26379/mymaster/2");
        assert_eq!((t.password.as_deref(), t.db), (Some("s3cret"), 2));
    }

    #[test]
    fn bad_sentinel_urls_say_what_is_wrong() {
        for (url, why) in [
            ("redis+sentinel://h:26379", "no master name"),
            ("redis+sentinel://h:26379/", "no master name"),
            ("redis+sentinel://h/m", "host:port"),
            ("redis+sentinel://h:0/m", "bad port"),
            ("redis+sentinel://h:1/m/x", "not a database number"),
            ("redis+sentinel://h:1/m/1/2", "expected /<master name>"),
        ] {
            let err = RedisTarget::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }

    #[test]
    fn one_server_a_cluster_and_nonsense() {
        assert_eq!(RedisTarget::parse("redis://h:1/").unwrap(), RedisTarget::Single("redis://h:1/".into()));
        assert_eq!(
            RedisTarget::parse("redis://a:1/, redis://b:2/").unwrap(),
            RedisTarget::Cluster(vec!["redis://a:1/".into(), "redis://b:2/".into()])
        );
        assert!(RedisTarget::parse("redis://a:1/,b:2").is_err());
        assert!(RedisTarget::parse("http://h/").unwrap_err().to_string().contains("SECKILL_REDIS_URL"));
        assert!(!RedisTarget::parse("redis://h:1/").unwrap().fails_over());
    }
}
