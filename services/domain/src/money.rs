//! Money rules of sales and refunds (issue 21): what a package line costs after its discount,
//! how an order's amount due is split into instalments, what each consumed lesson earns, and
//! what a refund returns.
//!
//! The rules, in one place:
//! - A package sells **paid lessons** and, separately, **gift lessons**. The amount paid buys
//!   the paid lessons only: gift lessons are never revenue and never refunded.
//! - Lessons are consumed **paid first, gifts last**, so a student who leaves early is refunded
//!   on what was paid and a gift never displaces a paid lesson.
//! - Revenue is recognised at the **paid price per lesson**: consuming the first `u` paid units
//!   has earned `⌊paid × u / paid_units⌋`, and one deduction earns the difference between two
//!   such points. Whatever the order and size of the deductions, a fully consumed package has
//!   earned exactly what was paid, never a cent more or less; a reversal gives back exactly what
//!   its deduction earned.
//! - A refund is computed on what was paid and not yet earned, by the school's tier table: the
//!   share of the paid lessons used picks a tier that keeps a percentage of that remainder (or
//!   refunds nothing), then a handling fee is taken; never below zero.
//!
//! All amounts are integer cents; all quantities are units (hundredths of a lesson,
//! [`UNITS_PER_LESSON`]). Nothing here reads a clock or does I/O.

use crate::ledger::{Cents, Units, UNITS_PER_LESSON};
use serde::{Deserialize, Serialize};

/// Largest amount one sale line may carry (100 million in the currency's main unit): keeps every
/// product of two amounts or of an amount and a unit count far inside `i64`.
pub const MAX_AMOUNT_CENTS: Cents = 10_000_000_000;
/// Most lessons one package line may sell (paid or gift).
pub const MAX_LESSONS: i64 = 10_000;

/// Why a sale, a plan or a policy is refused. Each names the field a form should mark.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum MoneyError {
    #[error("{field}: must be between {min} and {max}")]
    OutOfRange {
        field: &'static str,
        min: i64,
        max: i64,
    },
    #[error("discount: more than the list price")]
    DiscountOverPrice,
    #[error("discount: a reason is required")]
    DiscountWithoutReason,
    #[error("instalments: they add up to {sum} but {due} is due")]
    InstalmentsDontAddUp { sum: Cents, due: Cents },
    #[error("instalments: due dates must be in order")]
    InstalmentsOutOfOrder,
    #[error("refund tiers: {0}")]
    BadTiers(&'static str),
}

fn range(field: &'static str, v: i64, min: i64, max: i64) -> Result<(), MoneyError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(MoneyError::OutOfRange { field, min, max })
    }
}

/// Cents as text in the currency's main unit, two decimals: `2400.00`, `-5.50`.
pub fn fmt_cents(c: Cents) -> String {
    let sign = if c < 0 { "-" } else { "" };
    let a = c.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

// ---------------------------------------------------------------------------------------------
// Sales
// ---------------------------------------------------------------------------------------------

/// A discount off a line's list price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Discount {
    None,
    /// An amount in cents.
    Amount(Cents),
    /// A percentage in basis points (1 250 = 12.5 %).
    PercentBp(u32),
}

/// One package line of an order, as the front desk enters it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleLine {
    /// Paid lessons (whole lessons).
    pub lessons: i64,
    /// Gift lessons (whole lessons): separate, non-refundable, non-revenue.
    pub gift_lessons: i64,
    pub list_price_cents: Cents,
    pub discount: Discount,
    /// Required when there is a discount.
    pub discount_reason: Option<String>,
}

/// A priced line: what the package's money rules work from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinePrice {
    pub list_price_cents: Cents,
    pub discount_cents: Cents,
    /// List price less discount: what this line costs the family.
    pub due_cents: Cents,
    pub paid_units: Units,
    pub gift_units: Units,
}

/// Prices a line: the discount (a percentage rounded half up to the cent) comes off the list
/// price; the result is never negative and never above the list price.
pub fn price_line(line: &SaleLine) -> Result<LinePrice, MoneyError> {
    range("lessons", line.lessons, 0, MAX_LESSONS)?;
    range("gift_lessons", line.gift_lessons, 0, MAX_LESSONS)?;
    if line.lessons + line.gift_lessons == 0 {
        return Err(MoneyError::OutOfRange {
            field: "lessons",
            min: 1,
            max: MAX_LESSONS,
        });
    }
    range("list_price", line.list_price_cents, 0, MAX_AMOUNT_CENTS)?;
    if line.lessons == 0 && line.list_price_cents != 0 {
        // a price with nothing paid for in it would be revenue no lesson ever earns
        return Err(MoneyError::OutOfRange {
            field: "list_price",
            min: 0,
            max: 0,
        });
    }
    let discount_cents = match line.discount {
        Discount::None => 0,
        Discount::Amount(a) => {
            range("discount", a, 0, MAX_AMOUNT_CENTS)?;
            if a > line.list_price_cents {
                return Err(MoneyError::DiscountOverPrice);
            }
            a
        }
        Discount::PercentBp(bp) => {
            range("discount", i64::from(bp), 0, 10_000)?;
            (line.list_price_cents * i64::from(bp) + 5_000) / 10_000
        }
    };
    let reason = line
        .discount_reason
        .as_deref()
        .is_some_and(|r| !r.trim().is_empty());
    if discount_cents > 0 && !reason {
        return Err(MoneyError::DiscountWithoutReason);
    }
    Ok(LinePrice {
        list_price_cents: line.list_price_cents,
        discount_cents,
        due_cents: line.list_price_cents - discount_cents,
        paid_units: line.lessons * UNITS_PER_LESSON,
        gift_units: line.gift_lessons * UNITS_PER_LESSON,
    })
}

/// One instalment of an order's amount due: `due_on` is an opaque, ordered key (a local date).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instalment<D> {
    pub due_on: D,
    pub amount_cents: Cents,
}

/// Checks an instalment plan: positive amounts, due dates strictly in order, and the amounts
/// adding up to exactly `due_cents`.
pub fn check_instalments<D: Ord>(
    due_cents: Cents,
    plan: &[Instalment<D>],
) -> Result<(), MoneyError> {
    let mut sum: Cents = 0;
    for (i, p) in plan.iter().enumerate() {
        range("instalment", p.amount_cents, 1, MAX_AMOUNT_CENTS)?;
        if i > 0 && plan[i - 1].due_on >= p.due_on {
            return Err(MoneyError::InstalmentsOutOfOrder);
        }
        sum += p.amount_cents;
    }
    if sum != due_cents {
        return Err(MoneyError::InstalmentsDontAddUp {
            sum,
            due: due_cents,
        });
    }
    Ok(())
}

/// `n` equal instalments of `due_cents` (the first ones a cent larger when it does not divide),
/// on the given dates.
pub fn split_evenly<D: Clone>(due_cents: Cents, dates: &[D]) -> Vec<Instalment<D>> {
    let n = dates.len() as i64;
    if n == 0 {
        return Vec::new();
    }
    let (q, r) = (due_cents / n, due_cents % n);
    dates
        .iter()
        .enumerate()
        .map(|(i, d)| Instalment {
            due_on: d.clone(),
            amount_cents: q + i64::from((i as i64) < r),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Consumption and revenue
// ---------------------------------------------------------------------------------------------

/// A package's money: paid units bought with `paid_cents`, then gift units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageMoney {
    pub paid_units: Units,
    pub gift_units: Units,
    /// What was paid for the paid units (the line's amount due).
    pub paid_cents: Cents,
}

/// How a run of consumed units splits between paid and gift units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub paid_units: Units,
    pub gift_units: Units,
}

impl PackageMoney {
    pub fn from_price(p: &LinePrice) -> Self {
        Self {
            paid_units: p.paid_units,
            gift_units: p.gift_units,
            paid_cents: p.due_cents,
        }
    }

    pub fn total_units(&self) -> Units {
        self.paid_units + self.gift_units
    }

    /// Revenue earned once `consumed` units (paid first) are used: the paid price per unit,
    /// floored cumulatively, so that all paid units together earn exactly `paid_cents`.
    pub fn earned_through(&self, consumed: Units) -> Cents {
        if self.paid_units <= 0 {
            return 0;
        }
        let paid = consumed.clamp(0, self.paid_units);
        // i128: paid_cents × units stays exact for any amount and count
        (i128::from(self.paid_cents) * i128::from(paid) / i128::from(self.paid_units)) as Cents
    }

    /// Paid and gift units in `units` consumed after `consumed_before` (paid first).
    pub fn split(&self, consumed_before: Units, units: Units) -> Split {
        let before = consumed_before.max(0);
        let after = (before + units.max(0)).min(self.total_units());
        let paid_to = after.min(self.paid_units);
        let paid_from = before.min(self.paid_units);
        let paid = (paid_to - paid_from).max(0);
        Split {
            paid_units: paid,
            gift_units: (after - before).max(0) - paid,
        }
    }

    /// Revenue of one deduction of `units` after `consumed_before` units were used.
    pub fn revenue_of(&self, consumed_before: Units, units: Units) -> Cents {
        let before = consumed_before.max(0);
        self.earned_through(before + units.max(0)) - self.earned_through(before)
    }

    /// Paid money not yet earned after `consumed` units.
    pub fn unearned(&self, consumed: Units) -> Cents {
        self.paid_cents - self.earned_through(consumed)
    }
}

// ---------------------------------------------------------------------------------------------
// Refunds
// ---------------------------------------------------------------------------------------------

/// One row of a school's refund table: while at most `max_used_pct` % of the paid lessons are
/// used, the school keeps `keep_pct` % of what was paid and not yet earned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundTier {
    pub max_used_pct: u32,
    pub keep_pct: u32,
}

/// A school's refund policy: tiers by the share of paid lessons used (past the last tier, no
/// refund) and a handling fee taken from every refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPolicy {
    pub tiers: Vec<RefundTier>,
    pub fee_cents: Cents,
}

impl Default for RefundPolicy {
    /// None used: keep 10 % (开课前退费扣10%); less than half of the paid lessons used (up to
    /// 49 %): keep 10 % of what is not yet earned; half or more: no refund (课程完成50%后不退费);
    /// no fee. The same table as [`crate::ledger::RefundRule::default`]'s.
    /// The share kept never falls as use rises, so using a lesson never raises the refund.
    fn default() -> Self {
        Self {
            tiers: vec![
                RefundTier {
                    max_used_pct: 0,
                    keep_pct: 10,
                },
                RefundTier {
                    max_used_pct: 49,
                    keep_pct: 10,
                },
            ],
            fee_cents: 0,
        }
    }
}

impl RefundPolicy {
    /// Tiers strictly ascending by usage, at most 100 %, keeping a share that never falls as
    /// usage rises (so using more never refunds more); a fee within range.
    pub fn check(&self) -> Result<(), MoneyError> {
        if self.tiers.len() > 20 {
            return Err(MoneyError::BadTiers("at most 20 tiers"));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            if t.max_used_pct > 100 || t.keep_pct > 100 {
                return Err(MoneyError::BadTiers("percentages are between 0 and 100"));
            }
            if i > 0 {
                let p = self.tiers[i - 1];
                if t.max_used_pct <= p.max_used_pct {
                    return Err(MoneyError::BadTiers(
                        "usage limits must rise from row to row",
                    ));
                }
                if t.keep_pct < p.keep_pct {
                    return Err(MoneyError::BadTiers(
                        "the share kept must not fall as more lessons are used",
                    ));
                }
            }
        }
        range("fee", self.fee_cents, 0, MAX_AMOUNT_CENTS)
    }

    /// The tier that applies after `used` of `paid` units (exact comparison, no rounding).
    pub fn tier_for(&self, used: Units, paid: Units) -> Option<(usize, RefundTier)> {
        self.tiers.iter().copied().enumerate().find(|(_, t)| {
            // used / paid ≤ max / 100, without division
            i128::from(used.max(0)) * 100 <= i128::from(paid) * i128::from(t.max_used_pct)
        })
    }
}

/// What a refund returns, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundComputation {
    /// Paid money not yet earned: the base of the refund.
    pub unearned_cents: Cents,
    /// The tier applied (index into the policy's table); `None`: past the last tier.
    pub tier: Option<usize>,
    pub kept_cents: Cents,
    pub fee_cents: Cents,
    pub refund_cents: Cents,
    /// Units the refund removes: every unit left, gifts included.
    pub units_removed: Units,
    /// Of which gift units (removed, never refunded).
    pub gift_units_removed: Units,
}

/// Computes a refund of a package after `consumed` units were used.
pub fn compute_refund(
    policy: &RefundPolicy,
    money: &PackageMoney,
    consumed: Units,
) -> RefundComputation {
    let consumed = consumed.clamp(0, money.total_units());
    let used_paid = consumed.min(money.paid_units);
    let unearned = money.unearned(consumed).max(0);
    let left = money.total_units() - consumed;
    let gift_left = left.min(money.gift_units);
    let tier = if money.paid_units > 0 {
        policy.tier_for(used_paid, money.paid_units)
    } else {
        None
    };
    let (kept, fee, refund) = match tier {
        Some((_, t)) if unearned > 0 => {
            let kept = (i128::from(unearned) * i128::from(t.keep_pct.min(100)) / 100) as Cents;
            let before_fee = unearned - kept;
            let fee = policy.fee_cents.clamp(0, before_fee);
            (kept, fee, before_fee - fee)
        }
        _ => (unearned, 0, 0),
    };
    RefundComputation {
        unearned_cents: unearned,
        tier: tier.map(|(i, _)| i),
        kept_cents: kept,
        fee_cents: fee,
        refund_cents: refund,
        units_removed: left,
        gift_units_removed: gift_left,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const L: Units = UNITS_PER_LESSON;

    fn line(lessons: i64, gifts: i64, list: Cents, discount: Discount) -> SaleLine {
        SaleLine {
            lessons,
            gift_lessons: gifts,
            list_price_cents: list,
            discount,
            discount_reason: Some("opening offer".into()),
        }
    }

    #[test]
    fn a_discounted_package_earns_what_was_paid_not_the_list_price() {
        // 10 lessons listed at 3 000.00, 20 % off, 2 gift lessons
        let p = price_line(&line(10, 2, 300_000, Discount::PercentBp(2_000))).unwrap();
        assert_eq!((p.discount_cents, p.due_cents), (60_000, 240_000));
        let m = PackageMoney::from_price(&p);
        // one lesson earns 240.00, not the list 300.00
        assert_eq!(m.revenue_of(0, L), 24_000);
        // the 11th and 12th lessons are the gifts: nothing earned
        assert_eq!(m.revenue_of(10 * L, L), 0);
        assert_eq!(
            m.split(9 * L, 2 * L),
            Split {
                paid_units: L,
                gift_units: L
            }
        );
        assert_eq!(m.earned_through(12 * L), 240_000);
    }

    #[test]
    fn refund_tiers_follow_the_table_and_never_touch_gifts() {
        let policy = RefundPolicy {
            tiers: vec![
                RefundTier {
                    max_used_pct: 0,
                    keep_pct: 10,
                },
                RefundTier {
                    max_used_pct: 50,
                    keep_pct: 20,
                },
            ],
            fee_cents: 5_000,
        };
        policy.check().unwrap();
        let m = PackageMoney {
            paid_units: 10 * L,
            gift_units: 2 * L,
            paid_cents: 240_000,
        };
        // none used: keep 10 % of 2 400.00, minus a 50.00 fee
        let r = compute_refund(&policy, &m, 0);
        assert_eq!(
            (r.tier, r.kept_cents, r.refund_cents),
            (Some(0), 24_000, 211_000)
        );
        assert_eq!((r.units_removed, r.gift_units_removed), (12 * L, 2 * L));
        // 4 of 10 used: 1 440.00 unearned, keep 20 % = 288.00, fee 50.00 → 1 102.00
        let r = compute_refund(&policy, &m, 4 * L);
        assert_eq!(
            (r.unearned_cents, r.tier, r.refund_cents),
            (144_000, Some(1), 110_200)
        );
        // exactly half used is still "up to half"
        assert_eq!(compute_refund(&policy, &m, 5 * L).tier, Some(1));
        // more than half: nothing back
        let r = compute_refund(&policy, &m, 6 * L);
        assert_eq!((r.tier, r.refund_cents), (None, 0));
        // all paid lessons used, gifts left: nothing back, the gifts are removed
        let r = compute_refund(&policy, &m, 10 * L);
        assert_eq!((r.refund_cents, r.gift_units_removed), (0, 2 * L));
    }

    #[test]
    fn sale_lines_and_plans_are_checked_field_by_field() {
        assert_eq!(
            price_line(&line(10, 0, 1_000, Discount::Amount(1_001))),
            Err(MoneyError::DiscountOverPrice)
        );
        let mut no_reason = line(10, 0, 1_000, Discount::Amount(100));
        no_reason.discount_reason = Some("  ".into());
        assert_eq!(
            price_line(&no_reason),
            Err(MoneyError::DiscountWithoutReason)
        );
        assert!(matches!(
            price_line(&line(0, 0, 0, Discount::None)),
            Err(MoneyError::OutOfRange {
                field: "lessons",
                ..
            })
        ));
        assert!(matches!(
            price_line(&line(0, 3, 500, Discount::None)),
            Err(MoneyError::OutOfRange {
                field: "list_price",
                ..
            })
        ));
        assert!(matches!(
            price_line(&line(5, 0, 1_000, Discount::PercentBp(10_001))),
            Err(MoneyError::OutOfRange {
                field: "discount",
                ..
            })
        ));
        assert_eq!(RefundPolicy::default().check(), Ok(()));
        assert_eq!(
            (
                fmt_cents(240_000),
                fmt_cents(-550),
                fmt_cents(7),
                fmt_cents(i64::MIN)
            ),
            (
                "2400.00".into(),
                "-5.50".into(),
                "0.07".into(),
                "-92233720368547758.08".into()
            )
        );
        assert_eq!(
            RefundPolicy::default(),
            crate::ledger::RefundRule::default().to_policy()
        );
        // a gift-only package: free, earns nothing, refunds nothing
        let p = price_line(&line(0, 3, 0, Discount::None)).unwrap();
        let m = PackageMoney::from_price(&p);
        assert_eq!(m.revenue_of(0, 3 * L), 0);
        assert_eq!(
            compute_refund(&RefundPolicy::default(), &m, 0).refund_cents,
            0
        );

        let plan = [
            Instalment {
                due_on: 1,
                amount_cents: 600,
            },
            Instalment {
                due_on: 2,
                amount_cents: 400,
            },
        ];
        assert_eq!(check_instalments(1_000, &plan), Ok(()));
        assert_eq!(
            check_instalments(1_001, &plan),
            Err(MoneyError::InstalmentsDontAddUp {
                sum: 1_000,
                due: 1_001
            })
        );
        let swapped = [plan[1].clone(), plan[0].clone()];
        assert_eq!(
            check_instalments(1_000, &swapped),
            Err(MoneyError::InstalmentsOutOfOrder)
        );
        let bad = RefundPolicy {
            tiers: vec![
                RefundTier {
                    max_used_pct: 10,
                    keep_pct: 30,
                },
                RefundTier {
                    max_used_pct: 50,
                    keep_pct: 20,
                },
            ],
            fee_cents: 0,
        };
        assert!(matches!(bad.check(), Err(MoneyError::BadTiers(_))));
    }

    fn money() -> impl Strategy<Value = PackageMoney> {
        (0i64..200, 0i64..50, 0i64..5_000_000).prop_filter_map("some units", |(p, g, c)| {
            (p + g > 0).then_some(PackageMoney {
                paid_units: p * L,
                gift_units: g * L,
                paid_cents: if p == 0 { 0 } else { c },
            })
        })
    }

    fn policy() -> impl Strategy<Value = RefundPolicy> {
        (
            prop::collection::btree_map(0u32..=100, 0u32..=100, 0..5),
            0i64..100_000,
        )
            .prop_map(|(rows, fee)| {
                // keep shares made non-decreasing, as `check` requires
                let mut keep = 0;
                let tiers = rows
                    .into_iter()
                    .map(|(max_used_pct, k)| {
                        keep = keep.max(k);
                        RefundTier {
                            max_used_pct,
                            keep_pct: keep,
                        }
                    })
                    .collect();
                RefundPolicy {
                    tiers,
                    fee_cents: fee,
                }
            })
    }

    proptest! {
        /// However a package is consumed (any deduction sizes), its deductions earn exactly what
        /// was paid in total, each earns ≥ 0, and gift units earn nothing.
        #[test]
        fn deductions_earn_exactly_what_was_paid(
            m in money(),
            steps in prop::collection::vec(1i64..=300, 1..400),
        ) {
            let mut used = 0;
            let mut earned = 0;
            for s in steps {
                if used >= m.total_units() {
                    break;
                }
                let s = s.min(m.total_units() - used);
                let r = m.revenue_of(used, s);
                let split = m.split(used, s);
                prop_assert!(r >= 0);
                prop_assert_eq!(split.paid_units + split.gift_units, s);
                if split.paid_units == 0 {
                    prop_assert_eq!(r, 0, "gift units earned money");
                }
                earned += r;
                used += s;
            }
            prop_assert_eq!(earned, m.earned_through(used));
            prop_assert!(earned <= m.paid_cents);
            let rest = m.total_units() - used;
            prop_assert_eq!(earned + m.revenue_of(used, rest), m.paid_cents);
        }

        /// A reversal of any deduction gives back exactly what it earned.
        #[test]
        fn reversal_gives_back_what_the_deduction_earned(
            m in money(), before in 0i64..25_000, units in 1i64..500,
        ) {
            let before = before.min(m.total_units());
            let units = units.min(m.total_units() - before);
            let r = m.revenue_of(before, units);
            prop_assert_eq!(m.earned_through(before + units) - r, m.earned_through(before));
        }

        /// A refund never returns more than was paid and not yet earned; what was earned plus
        /// what is refunded plus what is kept and charged is exactly what was paid; using more
        /// lessons never refunds more.
        #[test]
        fn refunds_never_exceed_what_was_paid_and_fall_with_use(
            m in money(), p in policy(), a in 0i64..25_000, b in 0i64..25_000,
        ) {
            prop_assert!(p.check().is_ok(), "{p:?}");
            let (lo, hi) = (a.min(b), a.max(b));
            let r_lo = compute_refund(&p, &m, lo);
            let r_hi = compute_refund(&p, &m, hi);
            for (r, used) in [(r_lo, lo), (r_hi, hi)] {
                let used = used.min(m.total_units());
                prop_assert!(r.refund_cents >= 0 && r.kept_cents >= 0 && r.fee_cents >= 0);
                prop_assert!(r.refund_cents <= r.unearned_cents);
                prop_assert_eq!(
                    m.earned_through(used) + r.kept_cents + r.fee_cents + r.refund_cents,
                    m.paid_cents
                );
                prop_assert_eq!(r.units_removed, m.total_units() - used);
                prop_assert!(r.gift_units_removed <= m.gift_units);
            }
            prop_assert!(r_hi.refund_cents <= r_lo.refund_cents, "{r_lo:?} {r_hi:?}");
        }

        /// A priced line never costs less than zero or more than its list price; a percentage
        /// is rounded to the nearest cent.
        #[test]
        fn discounts_stay_within_the_list_price(
            list in 0i64..MAX_AMOUNT_CENTS, bp in 0u32..=10_000, amount in 0i64..MAX_AMOUNT_CENTS,
        ) {
            let pct = price_line(&line(10, 1, list, Discount::PercentBp(bp))).unwrap();
            prop_assert!(pct.due_cents >= 0 && pct.due_cents <= list);
            let exact = i128::from(list) * i128::from(bp);
            prop_assert!((i128::from(pct.discount_cents) * 10_000 - exact).abs() <= 5_000);
            match price_line(&line(10, 1, list, Discount::Amount(amount))) {
                Ok(p) => prop_assert_eq!(p.due_cents, list - amount),
                Err(e) => {
                    prop_assert!(amount > list);
                    prop_assert_eq!(e, MoneyError::DiscountOverPrice);
                }
            }
        }

        /// An even split is a valid plan for its amount.
        #[test]
        fn even_splits_add_up(due in 0i64..MAX_AMOUNT_CENTS, n in 1usize..24) {
            let dates: Vec<usize> = (0..n).collect();
            let plan = split_evenly(due, &dates);
            prop_assert_eq!(plan.iter().map(|p| p.amount_cents).sum::<i64>(), due);
            if due >= n as i64 {
                prop_assert_eq!(check_instalments(due, &plan), Ok(()));
            }
        }
    }
}
