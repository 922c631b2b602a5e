//! Who is in the crowd: the classes of traffic, how many of each, in which
//! order they arrive, and the address and user id each one has.
//!
//! Pure data, decided before anything is sent, so that the unit tests can
//! check the proportions and the addresses without a server, and so that
//! the user ids tell after the run (in the order DB too) which class a
//! buyer was: `crowd-<run>-<letter><n>`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result, bail, ensure};

/// One kind of client in the crowd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Token, then purchase, once; gives up at the first refusal.
    Honest,
    /// Like an honest buyer, but retries a `rate_limited` or `unavailable`
    /// answer after its `retry-after`.
    Eager,
    /// Reloads the product page (`GET /api/activities/{id}`).
    Refresher,
    /// One address, one account, as fast as it can: a token, and a purchase
    /// whenever it gets one.
    Bot,
    /// A valid account on the blacklist (by user id, or by its address).
    Blacklisted,
    /// A JWT signed with the wrong secret, or expired.
    Forged,
}

impl Class {
    pub const ALL: [Class; 6] =
        [Class::Honest, Class::Eager, Class::Refresher, Class::Bot, Class::Blacklisted, Class::Forged];
    /// The classes `--mix` shares the buyers between.
    pub const BUYERS: [Class; 4] = [Class::Honest, Class::Eager, Class::Blacklisted, Class::Forged];

    pub fn name(self) -> &'static str {
        match self {
            Class::Honest => "honest",
            Class::Eager => "eager",
            Class::Refresher => "refresher",
            Class::Bot => "bot",
            Class::Blacklisted => "blacklisted",
            Class::Forged => "forged",
        }
    }

    /// The letter before the number in the class's user ids.
    fn letter(self) -> char {
        match self {
            Class::Honest => 'h',
            Class::Eager => 'e',
            Class::Refresher => 'r',
            Class::Bot => 'z',
            Class::Blacklisted => 'x',
            Class::Forged => 'f',
        }
    }

    /// May this class's purchases be accepted? Blacklisted and forged ones never.
    pub fn may_buy(self) -> bool {
        !matches!(self, Class::Blacklisted | Class::Forged | Class::Refresher)
    }

    pub fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).expect("every class is in ALL")
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the buyers are shared between the buying classes (`--mix`), in parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    /// Parts of honest, eager, blacklisted, forged (the order of [`Class::BUYERS`]).
    parts: [u64; 4],
}

impl Mix {
    /// `honest=85,eager=10,blacklisted=3,forged=2`: parts, not necessarily
    /// summing to 100; a class left out gets none.
    pub fn parse(s: &str) -> Result<Self> {
        let mut parts = [0u64; 4];
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, value) =
                item.split_once('=').with_context(|| format!("--mix: `{item}` is not class=parts, e.g. honest=85"))?;
            let Some(i) = Class::BUYERS.iter().position(|c| c.name() == name.trim()) else {
                bail!("--mix: unknown class `{}`; the buyers are honest, eager, blacklisted and forged", name.trim());
            };
            parts[i] = value.trim().parse().with_context(|| format!("--mix: `{value}` is not a whole number"))?;
        }
        ensure!(parts.iter().sum::<u64>() > 0, "--mix: give at least one class a share");
        Ok(Self { parts })
    }

    /// How many of `buyers` each buying class gets: largest remainders, so
    /// the counts add up to `buyers` exactly.
    pub fn split(&self, buyers: u64) -> [u64; 4] {
        let total: u64 = self.parts.iter().sum();
        let mut counts = self.parts.map(|p| buyers * p / total);
        let mut left = buyers - counts.iter().sum::<u64>();
        let mut by_remainder: Vec<usize> = (0..4).collect();
        by_remainder.sort_by_key(|&i| std::cmp::Reverse(buyers * self.parts[i] % total));
        for &i in by_remainder.iter().cycle().take(4 * left as usize) {
            if left == 0 {
                break;
            }
            if self.parts[i] > 0 {
                counts[i] += 1;
                left -= 1;
            }
        }
        counts
    }
}

/// One client of the crowd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Actor {
    pub class: Class,
    /// Its number in the whole crowd: its address and, with the class, its user id.
    pub n: u32,
}

/// The first address the crowd binds: 127.16.0.1 and up, clear of the
/// 127.0.0.1 the servers of a test or a bench listen on.
const FIRST_SOURCE: u32 = u32::from_be_bytes([127, 16, 0, 1]);
/// Addresses available from [`FIRST_SOURCE`] before 127.255.255.255.
pub const MAX_CLIENTS: u64 = (u32::from_be_bytes([127, 255, 255, 254]) - FIRST_SOURCE) as u64;

impl Actor {
    /// Its own source address in 127.0.0.0/8 (Linux routes all of it to
    /// loopback, so any of them can be bound without configuration).
    pub fn source(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(FIRST_SOURCE + self.n))
    }

    pub fn user_id(&self, run: &str) -> String {
        format!("{}{}", user_prefix(run, self.class), self.n)
    }
}

/// What every user id of `class` in run `run` starts with.
pub fn user_prefix(run: &str, class: Class) -> String {
    format!("crowd-{run}-{}", class.letter())
}

/// The whole crowd, in the order its members arrive.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Buyers and refreshers, interleaved: they take turns on the connections.
    pub arrivals: Vec<Actor>,
    /// The bots, which run alongside all of them.
    pub bots: Vec<Actor>,
}

impl Plan {
    /// `buyers` shared by `mix`, `refreshers` and `bots`, numbered from 0;
    /// the arrivals shuffled with `seed` so every class is spread over the run.
    pub fn new(mix: &Mix, buyers: u64, refreshers: u64, bots: u64, seed: u64) -> Result<Self> {
        let clients = buyers + refreshers + bots;
        ensure!(
            clients <= MAX_CLIENTS,
            "{clients} clients need more addresses than 127.16.0.1-127.255.255.254 holds ({MAX_CLIENTS})"
        );
        let mut n = 0u32;
        let mut next = |class| {
            let actor = Actor { class, n };
            n += 1;
            actor
        };
        let mut arrivals = Vec::with_capacity((buyers + refreshers) as usize);
        for (class, count) in Class::BUYERS.into_iter().zip(mix.split(buyers)) {
            arrivals.extend((0..count).map(|_| next(class)));
        }
        arrivals.extend((0..refreshers).map(|_| next(Class::Refresher)));
        let bots = (0..bots).map(|_| next(Class::Bot)).collect();
        shuffle(&mut arrivals, seed);
        Ok(Self { arrivals, bots })
    }

    /// How many clients of `class` there are.
    pub fn count(&self, class: Class) -> u64 {
        self.arrivals.iter().chain(&self.bots).filter(|a| a.class == class).count() as u64
    }

    /// Every client, bots last.
    pub fn everyone(&self) -> impl Iterator<Item = &Actor> {
        self.arrivals.iter().chain(&self.bots)
    }
}

/// Fisher-Yates with splitmix64: the same seed gives the same crowd.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..items.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_shares_every_buyer_out() {
        let mix = Mix::parse("honest=85,eager=10,blacklisted=3,forged=2").unwrap();
        assert_eq!(mix.split(100_000), [85_000, 10_000, 3_000, 2_000]);
        let odd = Mix::parse("honest=1, eager=1, forged=1").unwrap();
        let split = odd.split(100);
        assert_eq!(split.iter().sum::<u64>(), 100);
        assert_eq!(split[2], 0, "a class left out gets none");
        assert!(split.iter().all(|&c| c == 0 || (33..=34).contains(&c)), "{split:?}");
        assert_eq!(Mix::parse("honest=1").unwrap().split(7), [7, 0, 0, 0]);
    }

    #[test]
    fn a_bad_mix_is_refused_with_a_reason() {
        let err = |s: &str| Mix::parse(s).unwrap_err().to_string();
        assert!(err("honest=85,robots=2").contains("unknown class `robots`"));
        assert!(err("honest").contains("class=parts"));
        assert!(err("honest=-1").contains("whole number"));
        assert!(err("honest=0").contains("at least one"));
        assert!(err("refresher=5").contains("unknown class"), "refreshers and bots have their own options");
    }

    #[test]
    fn everyone_has_an_address_and_a_user_id_of_their_own() {
        let mix = Mix::parse("honest=2,eager=1,blacklisted=1,forged=1").unwrap();
        let plan = Plan::new(&mix, 50, 20, 3, 7).unwrap();
        assert_eq!(plan.arrivals.len(), 70);
        assert_eq!((plan.count(Class::Honest), plan.count(Class::Refresher), plan.count(Class::Bot)), (20, 20, 3));
        let mut addresses: Vec<_> = plan.everyone().map(Actor::source).collect();
        addresses.sort();
        addresses.dedup();
        assert_eq!(addresses.len(), 73);
        assert_eq!(Actor { class: Class::Honest, n: 0 }.source(), "127.16.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(Actor { class: Class::Honest, n: 255 }.source(), "127.16.1.0".parse::<IpAddr>().unwrap());
        let bot = plan.bots[0];
        assert_eq!(bot.user_id("r1"), format!("crowd-r1-z{}", bot.n));
        assert!(seckill_api::valid_user_id(&Actor { class: Class::Forged, n: u32::MAX }.user_id("1765000000000")));
    }

    #[test]
    fn arrivals_are_shuffled_the_same_way_for_the_same_seed() {
        let mix = Mix::parse("honest=1,eager=1").unwrap();
        let a = Plan::new(&mix, 1000, 0, 0, 1).unwrap();
        let b = Plan::new(&mix, 1000, 0, 0, 1).unwrap();
        assert_eq!(a.arrivals, b.arrivals);
        // Spread: the first hundred hold both classes, not a block of one.
        let eager = a.arrivals[..100].iter().filter(|x| x.class == Class::Eager).count();
        assert!((25..=75).contains(&eager), "{eager}");
    }

    #[test]
    fn too_many_clients_for_the_loopback_block_are_refused() {
        let mix = Mix::parse("honest=1").unwrap();
        assert!(Plan::new(&mix, MAX_CLIENTS + 1, 0, 0, 1).is_err());
    }
}
