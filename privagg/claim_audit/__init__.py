"""A regulator's claim: parse it, make the release, attack it, find the DP equivalent, write the report.

``privagg audit CLAIM.toml --out DIR`` runs :func:`audit_claim`. The claim
format (:mod:`privagg.claim_audit.claim`) is documented key by key in
``docs/claims.md``; the search for the DP release of equal accuracy is in
:mod:`privagg.claim_audit.equivalent`; the audit's named steps in
:mod:`privagg.claim_audit.audit`.
"""

from privagg.claim_audit.audit import AuditOutcome, Finding, audit_claim, build_world, main_query, release_claim
from privagg.claim_audit.claim import Claim, DataSpec, MethodSpec, ReleaseSpec, load_claim, parse_claim
from privagg.claim_audit.equivalent import Equivalent, find_dp_equivalent, truth_of, utility_of

__all__ = [
    "AuditOutcome", "Claim", "DataSpec", "Equivalent", "Finding", "MethodSpec", "ReleaseSpec", "audit_claim",
    "build_world", "find_dp_equivalent", "load_claim", "main_query", "parse_claim", "release_claim", "truth_of",
    "utility_of",
]
