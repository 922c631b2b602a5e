//! Chinese and English. Chinese first: it is the default, English is one
//! click away (the choice is kept in localStorage).

/// The dashboard's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// The code kept in localStorage.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn from_code(code: &str) -> Option<Lang> {
        match code.trim().to_ascii_lowercase().as_str() {
            "zh" | "zh-cn" | "zh-hans" => Some(Lang::Zh),
            "en" | "en-us" | "en-gb" => Some(Lang::En),
            _ => None,
        }
    }

    /// The `<html lang>` value.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The switch's label, in the language itself.
    pub fn label(self) -> &'static str {
        match self {
            Lang::Zh => "中文",
            Lang::En => "EN",
        }
    }

    /// Picks the text of this language from a pair the server sent, falling
    /// back to the other one, then to `fallback`.
    pub fn pick<'a>(self, zh: &'a str, en: &'a str, fallback: &'a str) -> &'a str {
        let (first, second) = match self {
            Lang::Zh => (zh, en),
            Lang::En => (en, zh),
        };
        [first, second].into_iter().find(|s| !s.trim().is_empty()).unwrap_or(fallback)
    }
}

/// The text of `key` in `lang`. A key missing from the table (a bug the
/// tests catch) shows as `⟨?⟩` rather than breaking the page.
pub fn tr(lang: Lang, key: &str) -> &'static str {
    match TABLE.iter().find(|(k, _, _)| *k == key) {
        Some((_, zh, en)) => match lang {
            Lang::Zh => zh,
            Lang::En => en,
        },
        None => "⟨?⟩",
    }
}

/// `(key, 中文, English)`.
pub const TABLE: &[(&str, &str, &str)] = &[
    ("app.title", "秒杀管理台", "Seckill admin"),
    // Navigation and shell.
    ("nav.activities", "活动", "Activities"),
    ("nav.orders", "订单", "Orders"),
    ("nav.edge", "边缘限流", "Edge rules"),
    ("nav.blacklist", "黑名单", "Blacklist"),
    ("nav.checklist", "检查清单", "Checklist"),
    ("nav.logout", "退出登录", "Log out"),
    ("conn.title", "实时数据流（服务器推送事件）", "Live data stream (server-sent events)"),
    ("conn.live", "实时", "Live"),
    ("conn.connecting", "连接中…", "Connecting…"),
    ("conn.reconnecting", "重连中…", "Reconnecting…"),
    ("conn.off", "未连接", "Offline"),
    ("notfound.title", "页面不存在", "Page not found"),
    ("notfound.back", "返回活动列表", "Back to the activities"),
    // Common words.
    ("common.loading", "加载中…", "Loading…"),
    ("common.ok", "正常", "OK"),
    ("common.all", "全部", "All"),
    ("common.save", "保存", "Save"),
    ("common.saving", "保存中…", "Saving…"),
    ("common.cancel", "取消", "Cancel"),
    ("common.refresh", "刷新", "Refresh"),
    ("common.prev", "上一页", "Previous"),
    ("common.next", "下一页", "Next"),
    ("common.page", "第", "Page"),
    ("common.per_page", "每页", "Per page"),
    ("common.load_more", "加载更多", "Load more"),
    ("common.end_of_list", "已全部加载", "That is all"),
    ("error.failed", "请求失败：", "Request failed:"),
    ("error.network", "无法连接服务器：", "Cannot reach the server:"),
    ("error.not_found", "未找到：", "Not found:"),
    // Login.
    ("login.password", "管理员密码", "Admin password"),
    ("login.submit", "登录", "Log in"),
    ("login.busy", "登录中…", "Logging in…"),
    ("login.expired", "登录已过期，请重新登录。", "Your session expired; please log in again."),
    ("login.err.empty", "请输入密码", "Enter the password"),
    ("login.err.wrong", "密码错误", "Wrong password"),
    // Activities.
    ("activities.title", "秒杀活动", "Flash sales"),
    ("activities.new", "新建活动", "New activity"),
    ("activities.empty", "还没有活动。", "No activity yet."),
    ("activity.details", "详情", "Details"),
    ("activity.edit", "编辑", "Edit"),
    ("activity.remaining", "剩余库存", "Remaining"),
    ("activity.sold", "已售", "Sold"),
    ("activity.total", "总库存", "Total stock"),
    ("activity.sold_share", "已售比例", "Share sold"),
    ("activity.tokens", "已发令牌", "Tokens issued"),
    ("activity.purchases_rate", "购买/秒", "Purchases/s"),
    ("activity.rejections_rate", "拒绝/秒", "Rejections/s"),
    ("activity.rejections_by_reason", "拒绝原因：", "Rejected by reason:"),
    ("activity.waiting_live", "等待实时数据…", "Waiting for live data…"),
    ("activity.status.scheduled", "未开始", "Scheduled"),
    ("activity.status.live", "进行中", "Live"),
    ("activity.status.sold_out", "已售罄", "Sold out"),
    ("activity.status.ended", "已结束", "Ended"),
    ("live.title", "实时数据", "Live figures"),
    ("stats.title", "Redis 计数", "Redis counters"),
    ("stats.invariant", "库存守恒（剩余 + 已售 = 总数）", "Invariant (remaining + sold = total)"),
    ("stats.invariant_broken", "不成立！", "BROKEN"),
    ("stats.stream_length", "订单流长度", "Order stream length"),
    ("stats.note", "每 5 秒刷新。", "Refreshed every 5 seconds."),
    ("chart.sales", "销量走势", "Sales over time"),
    ("chart.rates", "购买与拒绝（每秒）", "Purchases and rejections per second"),
    ("chart.waiting", "正在收集数据，每秒一个点。", "Collecting data, one point a second."),
    ("chart.past_failed", "最近 10 分钟的数据未能载入：", "The last 10 minutes could not be loaded:"),
    (
        "chart.note",
        "打开页面时载入本后端最近 10 分钟（销量取自其中每秒最后一笔成交），之后来自实时数据流。",
        "When the page opens: this backend's last 10 minutes (units sold as of each second's last sale), then the live stream.",
    ),
    // Activity form.
    ("form.new_title", "新建活动", "New activity"),
    ("form.edit_title", "编辑活动", "Edit activity"),
    ("form.name", "名称", "Name"),
    ("form.price", "价格（元）", "Price (yuan)"),
    ("form.stock", "库存", "Stock"),
    ("form.limit", "每人限购", "Limit per user"),
    ("form.starts_at", "开始时间", "Starts at"),
    ("form.ends_at", "结束时间", "Ends at"),
    ("form.tz_note", "时间按本机时区填写。", "Times are in this device's time zone."),
    ("form.unchanged", "没有修改。", "Nothing changed."),
    (
        "form.editing_started",
        "该活动已开始或已结束，修改会立即影响线上。",
        "This activity has started or ended: changes apply immediately.",
    ),
    ("form.err.name_required", "请填写名称", "A name is required"),
    ("form.err.name_long", "名称最多 200 个字符", "At most 200 characters"),
    ("form.err.price", "请输入不小于 0 的金额，最多两位小数", "A price of 0 or more, at most two decimals"),
    ("form.err.integer", "请输入整数", "A whole number"),
    ("form.err.stock_negative", "库存不能小于 0", "Stock must be 0 or more"),
    ("form.err.stock_large", "库存过大（最多 1,000,000,000,000）", "Too large (at most 1,000,000,000,000)"),
    ("form.err.limit_small", "每人限购至少为 1", "The limit must be at least 1"),
    ("form.err.limit_large", "每人限购最多 1,000,000", "At most 1,000,000"),
    ("form.err.datetime", "请选择日期和时间", "Pick a date and time"),
    ("form.err.end_before_start", "结束时间必须晚于开始时间", "The end must be after the start"),
    // Orders.
    ("orders.title", "订单", "Orders"),
    ("orders.activity", "活动", "Activity"),
    ("orders.status", "状态", "Status"),
    ("orders.id", "订单号", "Order"),
    ("orders.user", "用户", "User"),
    ("orders.quantity", "数量", "Qty"),
    ("orders.amount", "金额", "Amount"),
    ("orders.created", "下单时间", "Created"),
    ("orders.deadline", "支付截止", "Pay by"),
    ("orders.empty", "没有符合条件的订单。", "No order matches."),
    ("order.status.queued", "排队中", "Queued"),
    ("order.status.pending_payment", "待支付", "Pending payment"),
    ("order.status.paid", "已支付", "Paid"),
    ("order.status.cancelled", "已取消", "Cancelled"),
    ("order.status.expired", "已过期", "Expired"),
    // Error codes (rejections by reason).
    ("code.bad_request", "请求错误", "Bad request"),
    ("code.unauthorized", "未认证", "Unauthorized"),
    ("code.forbidden", "禁止访问", "Forbidden"),
    ("code.blacklisted", "黑名单", "Blacklisted"),
    ("code.invalid_token", "令牌无效", "Invalid token"),
    ("code.not_found", "不存在", "Not found"),
    ("code.not_started", "未开始", "Not started"),
    ("code.ended", "已结束", "Ended"),
    ("code.sold_out", "已售罄", "Sold out"),
    ("code.limit_exceeded", "超出限购", "Limit exceeded"),
    ("code.order_closed", "订单已关闭", "Order closed"),
    ("code.rate_limited", "限流", "Rate limited"),
    ("code.unavailable", "服务不可用", "Unavailable"),
    // Edge rules.
    ("edge.title", "边缘限流规则", "Edge rules"),
    ("bench.title", "性能分析工具：基准测试最近结果", "Benchmarks: last results"),
    ("bench.none", "本机还没有保存的基准测试结果", "No benchmark results kept on this machine yet"),
    ("refunds.title", "待退款的支付", "Payments to refund"),
    ("refunds.none", "没有待退款的支付", "No payment to refund"),
    ("refunds.payment", "支付单号", "Payment"),
    ("refunds.order", "订单", "Order"),
    ("refunds.amount", "金额", "Amount"),
    ("refunds.reason", "原因", "Reason"),
    ("refunds.at", "处理于", "Applied at"),
    ("anti_bot.title", "接口防刷：工作量证明", "Anti-bot: proof of work"),
    (
        "anti_bot.what",
        "开启后，领取令牌前客户端须先解一道工作量证明（SHA-256 前导零位数），机器人刷令牌的成本随之上升；0 为关闭。",
        "While on, a client must solve a proof of work (leading zero bits of SHA-256) before it may ask for a purchase token, which makes every bot request cost CPU; 0 is off.",
    ),
    ("anti_bot.off", "未开启：领取令牌只需登录", "Off: a token needs only a login"),
    ("anti_bot.on", "已开启，前导零位数", "On, zero bits:"),
    ("anti_bot.bits", "前导零位数（0–24）", "Zero bits (0–24)"),
    ("degraded.title", "降级策略", "Degraded mode"),
    (
        "degraded.what",
        "开启后，边缘只放行领取令牌和下单请求，其余买家请求直接返回 503（retry-after）；管理后台不受影响。",
        "While on, the edge lets only token and purchase requests through and answers every other buyer request 503 with retry-after; the admin side is not affected.",
    ),
    ("degraded.on", "已降级", "Degraded"),
    ("degraded.off", "未降级：全部接口正常服务", "Off: every route is served"),
    ("degraded.since", "自", "since"),
    ("degraded.reason", "原因（必填）", "Reason (required)"),
    ("degraded.switch_on", "开启降级", "Switch on"),
    ("degraded.switch_off", "关闭降级", "Switch off"),
    ("edge.current", "当前版本", "Current version"),
    ("edge.version", "版本", "Version"),
    ("edge.saved_at", "保存于", "saved at"),
    ("edge.defaults", "内置默认值，从未保存", "the built-in defaults, never saved"),
    ("edge.picked_up", "边缘生效时间", "Picked up by the edge"),
    ("edge.picked_up_at", "边缘已于此时生效：", "picked up by the edge at"),
    ("edge.not_picked_up", "边缘尚未同步此版本", "not yet picked up by the edge"),
    ("edge.edge_id", "边缘节点", "Edge"),
    ("edge.rules_version", "规则版本", "Rules version"),
    ("edge.rules_since", "该版本生效于", "On this version since"),
    ("edge.last_sync", "最近同步", "last sync"),
    ("edge.behind", "落后", "behind"),
    ("edge.no_edges", "还没有边缘节点同步过。", "No edge has synced yet."),
    ("edge.edit", "修改限流", "Edit the limits"),
    ("edge.per_ip", "每 IP", "Per IP"),
    ("edge.per_user", "每用户", "Per user"),
    ("edge.rate", "速率（次/秒）", "Rate (per second)"),
    ("edge.burst", "突发", "Burst"),
    ("edge.in_flight", "并发上限", "In-flight limits"),
    ("edge.in_flight_per_ip", "每 IP 并发", "Per IP"),
    ("edge.in_flight_total", "总并发", "Total"),
    ("edge.route", "路由", "Route"),
    ("edge.save", "保存为新版本", "Save as a new version"),
    ("edge.saved_version", "已保存，版本", "Saved as version"),
    ("edge.history", "版本历史", "Version history"),
    ("edge.err.rate", "请输入大于 0 的速率", "A rate above 0"),
    ("edge.err.burst", "请输入不小于 0 的整数", "A whole number, 0 or more"),
    ("edge.err.in_flight", "请输入不小于 1 的整数", "A whole number, 1 or more"),
    ("edge.err.in_flight_order", "每 IP 并发不能超过总并发", "Cannot exceed the total"),
    // Reconciliation.
    ("recon.title", "对账", "Reconciliation"),
    ("recon.short", "对账", "Reconcile"),
    ("recon.ok", "对账一致：没有偏差。", "Reconciled: no drift."),
    (
        "recon.not_ok",
        "对账异常：存在偏差、守恒不成立或有死信。",
        "Not reconciled: drift, a broken invariant or dead letters.",
    ),
    ("recon.redis", "Redis", "Redis"),
    ("recon.redis_remaining", "Redis 剩余", "Redis remaining"),
    ("recon.redis_sold", "Redis 已售", "Redis sold"),
    ("recon.accounted", "已售去向", "Where the sold units are"),
    ("recon.db_holding", "数据库：待支付 + 已支付", "DB: pending payment + paid"),
    ("recon.db_unreleased", "数据库：取消/过期未回补", "DB: cancelled/expired, stock not back yet"),
    ("recon.stream_quantity", "订单流中（未入库）", "In the order stream (not in the DB yet)"),
    ("recon.dead_letter_quantity", "死信", "Dead letters"),
    ("recon.accounted_total", "合计", "Accounted for"),
    ("recon.drift", "偏差", "Drift"),
    (
        "recon.formula",
        "偏差 = Redis 已售 −（数据库持有 + 未回补 + 订单流 + 死信）。每 5 秒刷新。",
        "Drift = Redis sold − (DB holding + unreleased + stream + dead letters). Refreshed every 5 seconds.",
    ),
    ("recon.counts", "订单计数", "Order counts"),
    ("recon.stream_orders", "流中订单", "Orders in the stream"),
    ("recon.stream_pending", "已投递未确认", "Delivered, not acknowledged"),
    ("recon.dead_letters", "死信数", "Dead letters"),
    ("recon.db_orders", "数据库订单", "Orders in the DB"),
    ("recon.dead_letter_samples", "死信样本", "Dead letter samples"),
    ("recon.entry", "条目", "Entry"),
    ("recon.reason", "原因", "Reason"),
    ("recon.fields", "字段", "Fields"),
    ("recon.settle", "处理死信", "Settle dead letters"),
    ("dead.title", "死信", "Dead letters"),
    (
        "dead.explain",
        "无法写入订单库的订单事件。修复原因后可「重放」（写成订单），或「退款」（库存回补，可再售）。每条只能处理一次。",
        "Order events the worker could not write. After a fix, replay one (it becomes its order), or refund it (its units go back on sale). Each is settled once.",
    ),
    ("dead.order", "订单号", "Order"),
    ("dead.replay", "重放", "Replay"),
    ("dead.refund", "退款", "Refund"),
    ("dead.replayed", "已重放，订单已入库：", "Replayed; the order is a row now:"),
    ("dead.refunded", "已退款，库存已回补：", "Refunded; its stock is back on sale:"),
    ("dead.none", "没有死信。", "No dead letters."),
    // Pre-flight.
    ("preflight.title", "上线前检查", "Pre-flight check"),
    ("preflight.short", "上线前检查", "Pre-flight"),
    ("preflight.ready", "可以上线", "Ready to go live"),
    ("preflight.not_ready", "尚未就绪", "Not ready"),
    ("preflight.failing_count", "未通过的检查项：", "Checks failing:"),
    ("preflight.check_failed", "未通过", "failing"),
    // Blacklist.
    ("bl.title", "黑名单", "Blacklist"),
    ("bl.edges", "边缘同步", "Edge sync"),
    ("bl.users", "用户 ID", "User ids"),
    ("bl.ips", "IP / CIDR", "IPs / CIDRs"),
    ("bl.user_placeholder", "用户 ID，例如 user_42", "user id, e.g. user_42"),
    ("bl.ip_placeholder", "IP 或网段，例如 203.0.113.7 或 10.0.0.0/8", "IP or range, e.g. 203.0.113.7 or 10.0.0.0/8"),
    ("bl.add", "加入", "Add"),
    ("bl.remove", "移除", "Remove"),
    ("bl.confirm_remove", "从黑名单移除", "Remove from the blacklist:"),
    ("bl.empty", "黑名单为空。", "The list is empty."),
    ("bl.reach_waiting", "等待边缘同步…", "waiting for the edge…"),
    ("bl.reached_at", "已同步到边缘", "reached the edge at"),
    ("bl.err.user", "用户 ID 为 1–64 个字母、数字、_ 或 -", "A user id is 1–64 letters, digits, _ or -"),
    ("bl.err.ip", "请输入 IPv4/IPv6 地址或 CIDR 网段", "An IPv4/IPv6 address or CIDR range"),
    // Checklist.
    ("checklist.title", "秒杀系统性能优化检查清单", "Production checklist"),
    ("checklist.ticked", "已确认", "Done"),
    ("checklist.note", "备注（证据）", "Note (evidence)"),
    ("checklist.ticked_at", "确认于", "Ticked at"),
    ("check.status.ok", "正常", "OK"),
    ("check.status.warning", "警告", "Warning"),
    ("check.status.failing", "失败", "Failing"),
    ("check.status.manual", "人工确认", "Manual"),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use seckill_api::{ActivityStatus, ErrorCode};

    use super::*;
    use seckill_api::{CheckStatus, OrderStatus};

    #[test]
    fn keys_are_unique_and_both_languages_filled() {
        let mut seen = BTreeSet::new();
        for (key, zh, en) in TABLE {
            assert!(seen.insert(*key), "duplicate key {key}");
            assert!(!zh.trim().is_empty() && !en.trim().is_empty(), "{key} lacks a text");
        }
    }

    #[test]
    fn chinese_first() {
        assert_eq!(Lang::default(), Lang::Zh);
        assert_eq!(tr(Lang::default(), "nav.orders"), "订单");
        assert_eq!(tr(Lang::En, "nav.orders"), "Orders");
        assert_eq!(tr(Lang::En, "no.such.key"), "⟨?⟩");
    }

    #[test]
    fn codes_round_trip() {
        for l in [Lang::Zh, Lang::En] {
            assert_eq!(Lang::from_code(l.code()), Some(l));
        }
        assert_eq!(Lang::from_code("EN-us"), Some(Lang::En));
        assert_eq!(Lang::from_code("fr"), None);
    }

    #[test]
    fn pick_falls_back() {
        assert_eq!(Lang::Zh.pick("库存", "Stock", "id"), "库存");
        assert_eq!(Lang::En.pick("库存", "Stock", "id"), "Stock");
        assert_eq!(Lang::En.pick("库存", " ", "id"), "库存");
        assert_eq!(Lang::Zh.pick("", "", "id"), "id");
    }

    /// Every dotted key literal in the sources (`"form.err.price"`) is in the table.
    #[test]
    fn every_key_the_code_uses_exists() {
        let not_keys = ["seckill.admin.lang", "seckill.admin.session_expires_ms", "no.such.key"];
        let mut missing = Vec::new();
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![src];
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for literal in text.split('"').skip(1).step_by(2) {
                let is_key = literal.contains('.')
                    && literal
                        .split('.')
                        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
                if is_key && !not_keys.contains(&literal) && !TABLE.iter().any(|(k, _, _)| *k == literal) {
                    missing.push(format!("{}: {literal}", path.display()));
                }
            }
        }
        assert!(missing.is_empty(), "keys missing from the table: {missing:#?}");
    }

    /// Keys built at run time from wire names.
    #[test]
    fn every_status_and_code_has_a_name() {
        let mut keys: Vec<String> = Vec::new();
        for s in [ActivityStatus::Scheduled, ActivityStatus::Live, ActivityStatus::SoldOut, ActivityStatus::Ended] {
            keys.push(format!("activity.status.{}", s.as_str()));
        }
        keys.extend(OrderStatus::ALL.map(|s| format!("order.status.{}", s.as_str())));
        keys.extend(CheckStatus::ALL.map(|s| format!("check.status.{}", s.as_str())));
        let codes = [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::Blacklisted,
            ErrorCode::InvalidToken,
            ErrorCode::NotFound,
            ErrorCode::NotStarted,
            ErrorCode::Ended,
            ErrorCode::SoldOut,
            ErrorCode::LimitExceeded,
            ErrorCode::OrderClosed,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
        ];
        keys.extend(codes.map(|c| format!("code.{}", c.as_str())));
        for key in keys {
            assert_ne!(tr(Lang::Zh, &key), "⟨?⟩", "{key}");
        }
    }
}
