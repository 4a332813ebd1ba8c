"""docs/policy.md shows exactly the tier and profile tables of guardchain.certify.policy."""

from __future__ import annotations

from pathlib import Path

from guardchain.certify.policy import PROFILES, TIERS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text()


def test_every_tier_row_matches_the_code():
    for name, t in TIERS.items():
        row = (
            f"| {name} | {t.ratio_ci_upper_max:.2f} | {t.drift_min:.2f}–{t.drift_max:.2f} | {t.catastrophe_ratio:.1f} |"
        )
        assert row in DOC, row


def test_every_profile_row_matches_the_code():
    for name, p in PROFILES.items():
        row = f"| {name} | {p.seq_len} | {p.n_preview} | {p.n_final} | {p.n_resamples} | {p.target_half_width:g} |"
        assert row in DOC, row


def test_the_required_guard_chain_and_rollback_flags_match_the_code():
    from guardchain.certify.gates import PRIMARY_GATES
    from guardchain.certify.policy import ROLLBACK_GATES, TIER_GUARD_MODE, TIER_GUARDS

    for position, name in enumerate(TIER_GUARDS):
        assert f"| {position} | `{name}` | {TIER_GUARD_MODE} |" in DOC
    for gate in ("subject_finite", *PRIMARY_GATES):
        row = next(line for line in DOC.splitlines() if line.startswith(f"| `{gate}` |"))
        assert row.rstrip(" |").endswith("yes" if gate in ROLLBACK_GATES else "no"), row
