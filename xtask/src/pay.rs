//! `cargo xtask pay`: the simulated payment provider. Posts a signed
//! payment callback for an order to the running system, as a real provider
//! would after the buyer paid — optionally more than once, as real ones do.
//! The secret and the admin password come from `var/dev-secrets.env` (what
//! `cargo xtask start` made) unless set in the environment.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use serde_json::json;

use crate::{deps, http};

#[derive(clap::Args)]
pub struct PayArgs {
    /// The order to pay (as the purchase answered it).
    order_id: String,
    /// Amount paid; default: what the order costs (asked of the admin API).
    #[arg(long)]
    amount_cents: Option<i64>,
    /// The provider's payment id; default: a new one.
    #[arg(long)]
    payment_id: Option<String>,
    /// Send the same callback this many times (providers retry).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    times: u32,
    /// Where to post: the edge (or a backend).
    #[arg(long, default_value = "127.0.0.1:8080")]
    to: SocketAddr,
}

/// A secret from the environment, else from `var/dev-secrets.env`.
fn secret(name: &str) -> anyhow::Result<String> {
    if let Ok(value) = std::env::var(name).map(|v| v.trim().to_owned())
        && !value.is_empty()
    {
        return Ok(value);
    }
    let file = deps::root().join("var/dev-secrets.env");
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("{name} is not set and {} is missing (run cargo xtask start)", file.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
        .map(str::to_owned)
        .with_context(|| format!("{name} is neither set nor in {}", file.display()))
}

pub fn pay(args: PayArgs) -> anyhow::Result<()> {
    let amount = match args.amount_cents {
        Some(amount) => amount,
        None => {
            let password = secret("SECKILL_ADMIN_PASSWORD")?;
            let login =
                http::expect(args.to, "POST", "/admin/api/login", None, Some(&json!({"password": password})), 200)?;
            let admin = login["token"].as_str().context("login answer without token")?;
            let order =
                http::expect(args.to, "GET", &format!("/api/orders/{}", args.order_id), Some(admin), None, 200)?;
            order["amount_cents"].as_i64().context("order without amount_cents")?
        }
    };
    let payment_id = args.payment_id.unwrap_or_else(|| format!("sim-{:016x}", rand::random::<u64>()));
    let paid_at = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339)?;
    let body = json!({"payment_id": payment_id, "order_id": args.order_id, "amount_cents": amount, "paid_at": paid_at})
        .to_string();
    let signature = seckill_api::payment::sign(secret("SECKILL_PAYMENT_SECRET")?, body.as_bytes());
    let headers = [(seckill_api::payment::SIGNATURE_HEADER, signature.as_str())];
    for n in 1..=args.times {
        let (status, answer) = http::request_raw(args.to, "POST", "/api/payments/callback", &headers, &body)?;
        println!("callback {n}/{}: {status} {answer}", args.times);
        if status != 202 {
            bail!("the callback was refused");
        }
    }
    println!("payment {payment_id}: {amount} cents for {}; see GET /admin/api/payments", args.order_id);
    Ok(())
}
