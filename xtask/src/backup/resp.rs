//! Just enough of the Redis protocol (RESP2) for backup and restore, without
//! pulling a Redis client into xtask: one connection per master, pipelines,
//! and the three shapes of the sale's Redis (one server, the master Sentinel
//! names, every master of a Cluster, commands routed by slot and `MOVED`).

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};

use seckill_api::percent::percent_decode;

use super::common::{redact, split_host_port};

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Reply {
    Nil,
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

impl Reply {
    pub(super) fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bulk(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            Reply::Status(s) => s.parse().ok(),
            _ => None,
        }
    }

    pub(super) fn text(&self) -> Option<String> {
        match self {
            Reply::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Reply::Status(s) => Some(s.clone()),
            Reply::Int(i) => Some(i.to_string()),
            _ => None,
        }
    }

    pub(super) fn array(self) -> Vec<Reply> {
        match self {
            Reply::Array(items) => items,
            _ => Vec::new(),
        }
    }
}

/// One server: where, and with what credentials and database.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) db: u32,
}

impl Endpoint {
    pub(super) fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `redis://[user[:password]@]host[:port][/db]`.
    pub(super) fn parse(url: &str) -> anyhow::Result<Self> {
        let Some(rest) = url.strip_prefix("redis://") else {
            if url.starts_with("rediss://") || url.starts_with("unix://") || url.starts_with("redis+unix://") {
                bail!("{}: TLS and unix-socket Redis URLs are not supported by backup/restore yet", redact(url));
            }
            bail!("{}: expected redis://host:port[/db]", redact(url));
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => match info.split_once(':') {
                Some((user, password)) => {
                    (Some(percent_decode(user).into_owned()), Some(percent_decode(password).into_owned()))
                }
                None => (Some(percent_decode(info).into_owned()), None),
            },
        };
        let (host, port) = split_host_port(hostport, 6379).with_context(|| redact(url))?;
        let db = match path.trim_matches('/') {
            "" => 0,
            db => db.parse().with_context(|| format!("{}: {db:?} is not a database number", redact(url)))?,
        };
        Ok(Self { host, port, user: user.filter(|u| !u.is_empty()), password: password.filter(|p| !p.is_empty()), db })
    }
}

/// A connection speaking RESP2.
pub(super) struct Conn {
    pub(super) reader: BufReader<TcpStream>,
    pub(super) writer: TcpStream,
    pub(super) addr: String,
}

impl Conn {
    pub(super) fn connect(ep: &Endpoint) -> anyhow::Result<Self> {
        let addr = ep.addr();
        let mut last = None;
        let mut stream = None;
        for sa in (ep.host.as_str(), ep.port).to_socket_addrs().with_context(|| format!("resolving {addr}"))? {
            match TcpStream::connect_timeout(&sa, Duration::from_secs(5)) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let stream = match (stream, last) {
            (Some(s), _) => s,
            (None, Some(e)) => return Err(e).with_context(|| format!("connecting to Redis at {addr}")),
            (None, None) => bail!("{addr} resolves to no address"),
        };
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        stream.set_write_timeout(Some(Duration::from_secs(60)))?;
        stream.set_nodelay(true)?;
        let mut conn = Self { reader: BufReader::new(stream.try_clone()?), writer: stream, addr: addr.clone() };
        if let Some(password) = &ep.password {
            let auth = match &ep.user {
                Some(user) => conn.call(&["AUTH", user, password]),
                None => conn.call(&["AUTH", password]),
            };
            auth.with_context(|| format!("AUTH at {addr}"))?;
        }
        if ep.db != 0 {
            conn.call(&["SELECT", &ep.db.to_string()]).with_context(|| format!("SELECT {} at {addr}", ep.db))?;
        }
        Ok(conn)
    }

    pub(super) fn encode(buf: &mut Vec<u8>, args: &[&[u8]]) {
        buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            buf.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            buf.extend_from_slice(arg);
            buf.extend_from_slice(b"\r\n");
        }
    }

    /// Sends every command at once and reads their replies (errors included) in order.
    pub(super) fn pipeline(&mut self, commands: &[Vec<&[u8]>]) -> anyhow::Result<Vec<Reply>> {
        let mut buf = Vec::new();
        for args in commands {
            Self::encode(&mut buf, args);
        }
        self.writer.write_all(&buf).with_context(|| format!("writing to Redis at {}", self.addr))?;
        commands.iter().map(|_| self.read()).collect()
    }

    /// One command; an error reply is returned as `Reply::Error`.
    pub(super) fn request(&mut self, args: &[&[u8]]) -> anyhow::Result<Reply> {
        Ok(self.pipeline(&[args.to_vec()])?.remove(0))
    }

    /// One command; an error reply is an error.
    pub(super) fn call_raw(&mut self, args: &[&[u8]]) -> anyhow::Result<Reply> {
        match self.request(args)? {
            Reply::Error(e) => Err(anyhow!("Redis at {}: {e}", self.addr)),
            reply => Ok(reply),
        }
    }

    pub(super) fn call(&mut self, args: &[&str]) -> anyhow::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call_raw(&args)
    }

    pub(super) fn read(&mut self) -> anyhow::Result<Reply> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).with_context(|| format!("reading from Redis at {}", self.addr))?;
        if line.len() < 3 || !line.ends_with(b"\r\n") {
            bail!("Redis at {} closed the connection or sent a malformed reply", self.addr);
        }
        let body = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        let number = || body.parse::<i64>().with_context(|| format!("a malformed reply from {}", self.addr));
        Ok(match line[0] {
            b'+' => Reply::Status(body),
            b'-' => Reply::Error(body),
            b':' => Reply::Int(number()?),
            b'$' => match number()? {
                n if n < 0 => Reply::Nil,
                n => {
                    let mut data = vec![0; n as usize + 2];
                    self.reader.read_exact(&mut data)?;
                    data.truncate(n as usize);
                    Reply::Bulk(data)
                }
            },
            b'*' => match number()? {
                n if n < 0 => Reply::Nil,
                n => {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.read()?);
                    }
                    Reply::Array(items)
                }
            },
            other => bail!("an unexpected reply type {:?} from {}", other as char, self.addr),
        })
    }

    /// `field` of `INFO section`.
    pub(super) fn info_field(&mut self, section: &str, field: &str) -> Option<String> {
        let info = self.call(&["INFO", section]).ok()?.text()?;
        info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_owned()))
    }
}

pub(super) struct Master {
    pub(super) ep: Endpoint,
    pub(super) conn: Conn,
    /// Cluster slot ranges this master serves (empty: all, or not known).
    pub(super) slots: Vec<(u16, u16)>,
}

/// The masters of the sale's Redis: one server, the master Sentinel names, or
/// every master of a Cluster.
pub(super) struct Redis {
    pub(super) kind: &'static str,
    pub(super) masters: Vec<Master>,
    pub(super) db: u32,
}

impl Redis {
    pub(super) fn open(url: &str) -> anyhow::Result<Self> {
        let url = url.trim();
        if let Some(rest) = url.strip_prefix("redis+sentinel://") {
            return Self::sentinel(url, rest);
        }
        if url.contains(',') {
            let nodes: Vec<&str> = url.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
            return Self::cluster(&nodes);
        }
        let ep = Endpoint::parse(url)?;
        let conn = Conn::connect(&ep)?;
        let db = ep.db;
        Ok(Self { kind: "single", masters: vec![Master { ep, conn, slots: Vec::new() }], db })
    }

    pub(super) fn sentinel(url: &str, rest: &str) -> anyhow::Result<Self> {
        let (authority, path) =
            rest.split_once('/').with_context(|| format!("{}: no /<master name> after the sentinels", redact(url)))?;
        let (password, hosts) = match authority.rsplit_once('@') {
            Some((info, hosts)) => (
                Some(percent_decode(info.split_once(':').map_or(info, |(_, p)| p)).into_owned())
                    .filter(|p| !p.is_empty()),
                hosts,
            ),
            None => (None, authority),
        };
        let mut segments = path.trim_end_matches('/').split('/');
        let name = segments.next().filter(|n| !n.is_empty()).context("no master name after the sentinels")?;
        let db: u32 = match segments.next() {
            None => 0,
            Some(db) => db.parse().with_context(|| format!("{db:?} is not a database number"))?,
        };
        let mut errors = Vec::new();
        for host in hosts.split(',') {
            let (host, port) = split_host_port(host.trim(), 26379)?;
            let sentinel = Endpoint { host, port, user: None, password: None, db: 0 };
            let found = Conn::connect(&sentinel)
                .and_then(|mut c| c.call(&["SENTINEL", "get-master-addr-by-name", name]))
                .map(Reply::array);
            match found.as_deref() {
                Ok([h, p]) => {
                    let (Some(h), Some(p)) = (h.text(), p.int()) else { continue };
                    let ep = Endpoint { host: h, port: p as u16, user: None, password: password.clone(), db };
                    let mut conn = Conn::connect(&ep)?;
                    let role = conn.call(&["ROLE"])?.array().first().and_then(Reply::text).unwrap_or_default();
                    if role != "master" {
                        bail!("the sentinels name {} as master of {name:?}, but it is a {role}", ep.addr());
                    }
                    return Ok(Self { kind: "sentinel", masters: vec![Master { ep, conn, slots: Vec::new() }], db });
                }
                Ok(_) => errors.push(format!("{}: does not know {name:?}", sentinel.addr())),
                Err(e) => errors.push(format!("{}: {e:#}", sentinel.addr())),
            }
        }
        bail!("no sentinel named the master {name:?}: {}", errors.join("; "))
    }

    pub(super) fn cluster(nodes: &[&str]) -> anyhow::Result<Self> {
        let mut errors = Vec::new();
        for node in nodes {
            let ep = Endpoint { db: 0, ..Endpoint::parse(node)? };
            let slots = Conn::connect(&ep).and_then(|mut c| c.call(&["CLUSTER", "SLOTS"]));
            let slots = match slots {
                Ok(slots) => slots.array(),
                Err(e) => {
                    errors.push(format!("{}: {e:#}", ep.addr()));
                    continue;
                }
            };
            let mut masters: Vec<Master> = Vec::new();
            for range in slots {
                let range = range.array();
                let (Some(start), Some(end)) = (range.first().and_then(Reply::int), range.get(1).and_then(Reply::int))
                else {
                    continue;
                };
                let node = range.get(2).cloned().map(Reply::array).unwrap_or_default();
                let host = node.first().and_then(Reply::text).filter(|h| !h.is_empty() && h != "?");
                let port = node.get(1).and_then(Reply::int).context("CLUSTER SLOTS without a port")? as u16;
                let host = host.unwrap_or_else(|| ep.host.clone());
                let slot = (start as u16, end as u16);
                if let Some(m) = masters.iter_mut().find(|m| m.ep.host == host && m.ep.port == port) {
                    m.slots.push(slot);
                } else {
                    let master_ep = Endpoint { host, port, ..ep.clone() };
                    let conn = Conn::connect(&master_ep)?;
                    masters.push(Master { ep: master_ep, conn, slots: vec![slot] });
                }
            }
            if masters.is_empty() {
                bail!("the cluster at {} serves no slots", ep.addr());
            }
            masters.sort_by_key(|m| (m.ep.host.clone(), m.ep.port));
            return Ok(Self { kind: "cluster", masters, db: 0 });
        }
        bail!("no cluster node answered CLUSTER SLOTS: {}", errors.join("; "))
    }

    pub(super) fn describe(&self) -> String {
        let masters: Vec<String> = self.masters.iter().map(|m| m.ep.addr()).collect();
        format!("{}, master {} db {}", self.kind, masters.join(","), self.db)
    }

    /// The master serving `key`.
    pub(super) fn master_for(&self, key: &[u8]) -> usize {
        if self.masters.len() == 1 {
            return 0;
        }
        let slot = key_slot(key);
        self.masters.iter().position(|m| m.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))).unwrap_or(0)
    }

    /// The master at `addr` (as `MOVED` names it), connected on first use.
    pub(super) fn master_at(&mut self, addr: &str) -> anyhow::Result<usize> {
        if let Some(i) = self.masters.iter().position(|m| m.ep.addr() == addr) {
            return Ok(i);
        }
        let (host, port) = split_host_port(addr, 6379)?;
        let ep = Endpoint { host, port, ..self.masters[0].ep.clone() };
        let conn = Conn::connect(&ep)?;
        self.masters.push(Master { ep, conn, slots: Vec::new() });
        Ok(self.masters.len() - 1)
    }

    /// A command on `key`, on the master serving it (following `MOVED`).
    pub(super) fn call_keyed(&mut self, key: &[u8], args: &[&[u8]]) -> anyhow::Result<Reply> {
        let mut i = self.master_for(key);
        for _ in 0..3 {
            match self.masters[i].conn.request(args)? {
                Reply::Error(e) if e.starts_with("MOVED ") => {
                    let addr = e.split_whitespace().nth(2).context("MOVED without an address")?.to_owned();
                    i = self.master_at(&addr)?;
                }
                Reply::Error(e) => bail!("Redis at {}: {e}", self.masters[i].ep.addr()),
                reply => return Ok(reply),
            }
        }
        bail!("Redis kept redirecting a command on {}", String::from_utf8_lossy(key))
    }

    /// Keys in the database on every master, and a few of their names.
    pub(super) fn key_count(&mut self) -> anyhow::Result<(i64, Vec<String>)> {
        let (mut count, mut sample) = (0, Vec::new());
        for master in &mut self.masters {
            count += master.conn.call(&["DBSIZE"])?.int().unwrap_or(0);
            if sample.len() < 5 {
                let found = master.conn.call(&["SCAN", "0", "COUNT", "20"])?.array();
                let names = found.into_iter().nth(1).map(Reply::array).unwrap_or_default();
                sample.extend(names.iter().filter_map(Reply::text).take(5 - sample.len()));
            }
        }
        Ok((count, sample))
    }

    /// Deletes every key of the database on every master; returns how many.
    pub(super) fn delete_all(&mut self) -> anyhow::Result<u64> {
        let mut deleted = 0;
        for master in &mut self.masters {
            loop {
                let keys = scan_all(&mut master.conn)?;
                if keys.is_empty() {
                    break;
                }
                for chunk in keys.chunks(500) {
                    // One key per command: a Cluster refuses a multi-key command across slots.
                    let commands: Vec<Vec<&[u8]>> = chunk.iter().map(|k| vec![b"UNLINK".as_slice(), k]).collect();
                    for reply in master.conn.pipeline(&commands)? {
                        if let Reply::Error(e) = reply {
                            bail!("deleting keys at {}: {e}", master.ep.addr());
                        }
                        deleted += 1;
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// `RESTORE key expire_at payload REPLACE ABSTTL` for each, grouped by master.
    pub(super) fn restore_batch(&mut self, batch: Vec<(Vec<u8>, Vec<u8>, i64)>) -> anyhow::Result<u64> {
        let mut by_master: BTreeMap<usize, Vec<KeyToRestore>> = BTreeMap::new();
        for (key, payload, expire_at) in batch {
            by_master.entry(self.master_for(&key)).or_default().push((key, payload, expire_at.to_string()));
        }
        let mut restored = 0;
        for (i, entries) in by_master {
            let commands: Vec<Vec<&[u8]>> = entries
                .iter()
                .map(|(k, p, ttl)| vec![b"RESTORE".as_slice(), k, ttl.as_bytes(), p, b"REPLACE", b"ABSTTL"])
                .collect();
            let replies = self.masters[i].conn.pipeline(&commands)?;
            for (command, reply) in commands.iter().zip(replies) {
                match reply {
                    Reply::Error(e) if e.starts_with("MOVED ") => {
                        self.call_keyed(command[1], command)?;
                    }
                    Reply::Error(e) => {
                        bail!(
                            "RESTORE of {} at {}: {e}",
                            String::from_utf8_lossy(command[1]),
                            self.masters[i].ep.addr()
                        )
                    }
                    _ => {}
                }
                restored += 1;
            }
        }
        Ok(restored)
    }
}

/// A key, its `DUMP` payload and its `RESTORE` ttl argument (an absolute expiry in ms, or 0).
type KeyToRestore = (Vec<u8>, Vec<u8>, String);

/// The Redis Cluster slot of `key` (CRC16/XMODEM of its hash tag, mod 16384).
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').filter(|&close| close > 0).map(|close| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in tagged {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc % 16384
}

/// Every key of the connection's database (SCAN; each once).
pub(super) fn scan_all(conn: &mut Conn) -> anyhow::Result<Vec<Vec<u8>>> {
    let (mut cursor, mut seen, mut keys) = ("0".to_owned(), HashSet::new(), Vec::new());
    loop {
        let mut reply = conn.call(&["SCAN", &cursor, "COUNT", "1000"])?.array().into_iter();
        cursor = reply.next().and_then(|c| c.text()).context("a malformed SCAN reply")?;
        for key in reply.next().map(Reply::array).unwrap_or_default() {
            if let Reply::Bulk(key) = key
                && seen.insert(key.clone())
            {
                keys.push(key);
            }
        }
        if cursor == "0" {
            return Ok(keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_hash_tag() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(key_slot(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"seckill:inventory:{42}"), key_slot(b"42"));
        assert_eq!(key_slot(b"foo{}{bar}"), 8363);
        assert_eq!(key_slot(b"somekey"), 11058);
        assert_eq!(key_slot(b"foo{hash_tag}"), 2515);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
    }

    #[test]
    fn urls_are_read_and_redacted() {
        let ep = Endpoint::parse("redis://app:p%40ss@10.0.0.5:6380/2").unwrap();
        assert_eq!((ep.host.as_str(), ep.port, ep.db), ("10.0.0.5", 6380, 2));
        assert_eq!((ep.user.as_deref(), ep.password.as_deref()), (Some("app"), Some("p@ss")));
        let ep = Endpoint::parse("redis://:secret@[::1]/").unwrap();
        assert_eq!((ep.host.as_str(), ep.port, ep.user, ep.password.as_deref()), ("::1", 6379, None, Some("secret")));
        assert!(Endpoint::parse("rediss://h/").is_err());
        assert_eq!(redact("redis://:pw@a:1/,redis://:pw@b:2/"), "redis://…@a:1/,redis://…@b:2/");
    }
}
