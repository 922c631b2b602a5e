//! The proof of work an operator can require on the token step (接口防刷):
//! before it may ask for a purchase token, a buyer's client finds a `nonce`
//! such that SHA-256 of `challenge:nonce` starts with `bits` zero bits. It
//! costs a browser a fraction of a second and a bot farm that much per
//! request, every request. The backend issues and checks; clients (the
//! tests, the load tool, a shop's page) solve with the same code.

use sha2::{Digest, Sha256};

/// The header a token request carries its proof in: `<challenge>:<nonce>`.
pub const POW_HEADER: &str = "x-seckill-pow";

/// The most bits an operator may ask for (2^24 hashes is seconds in a browser).
pub const MAX_BITS: u32 = 24;

/// Leading zero bits of SHA-256(`challenge:nonce`).
pub fn zero_bits(challenge: &str, nonce: &str) -> u32 {
    let digest = Sha256::new().chain_update(challenge).chain_update(b":").chain_update(nonce).finalize();
    let mut bits = 0;
    for byte in digest {
        bits += byte.leading_zeros();
        if byte != 0 {
            break;
        }
    }
    bits
}

/// The first nonce (a decimal number) that meets `bits` for `challenge`.
pub fn solve(challenge: &str, bits: u32) -> String {
    (0u64..).map(|n| n.to_string()).find(|nonce| zero_bits(challenge, nonce) >= bits).expect("some nonce meets it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_solved_nonce_meets_its_bits_and_a_random_one_rarely_does() {
        let nonce = solve("abc", 12);
        assert!(zero_bits("abc", &nonce) >= 12);
        assert!(zero_bits("abd", &nonce) < 12 || solve("abd", 12) == nonce, "bound to its challenge");
        assert_eq!(solve("abc", 0), "0", "no work asked, none done");
    }
}
