"""What an export selects and how it is written: typed, validated options of SFT and DPO exports."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from db.curation import DEFAULT_POLICY, POLICIES
from db.scope import Scope
from exports.errors import ExportOptionError
from exports.routing import DEFAULT_SMALL

ABLATIONS = ("correct-only", "reflected", "unmodified", "curated")
SFT_FORMATS = ("inst", "messages")
DEFAULT_SPLITS = ("train",)
DEFAULT_MAX_TOKENS = 512  # the original training length
_CURATED_ONLY = ("include_bias", "use_relabels", "reviewed_only")


def _names(value: Any, option: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else tuple(value or ())
    if any(not isinstance(v, str) or not v.strip() for v in items):
        raise ExportOptionError(f"{option} takes names of the database, e.g. {option} train; got {value!r}.")
    return tuple(dict.fromkeys(items))


def _normalise(options: _Common) -> None:
    """Splits and datasets as tuples of distinct names (ExportOptionError for anything else)."""
    object.__setattr__(options, "splits", _names(options.splits, "--split"))
    object.__setattr__(options, "datasets", _names(options.datasets, "--dataset"))


def _check_common(options: _Common) -> None:
    """Check what SFT and DPO options share."""
    if options.policy not in POLICIES:
        raise ExportOptionError(f"--policy must be one of {', '.join(POLICIES)}, not {options.policy!r}: how an "
                                "example the reviewers disagree on is exported (unanimous leaves it out).")
    splits, max_tokens, shuffle_seed = options.splits, options.max_tokens, options.shuffle_seed
    if not splits:
        raise ExportOptionError("Give at least one split (--split train); training data should not mix in "
                                "dev or test by accident, so there is no 'all'.")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise ExportOptionError(f"--max-tokens must be a positive whole number, not {max_tokens!r}.")
    route = options.route_small
    if isinstance(route, bool) or not isinstance(route, (int, float)) or route < 0:
        raise ExportOptionError(f"--route small=R takes a share of words >= 0 (0.2 is 20 %), not {route!r}.")
    if shuffle_seed is not None and (isinstance(shuffle_seed, bool) or not isinstance(shuffle_seed, int)):
        raise ExportOptionError(f"--shuffle-seed must be a whole number, not {shuffle_seed!r}.")


class _Common:
    """What SFT and DPO options share: the kind, which examples, and their JSON form."""

    kind: ClassVar[str]
    splits: tuple[str, ...]
    datasets: tuple[str, ...]
    shuffle_seed: int | None
    max_tokens: int
    tokenizer: str | None
    policy: str
    route_small: float

    @property
    def scope(self) -> Scope:
        """Which examples the export considers."""
        return Scope(datasets=self.datasets, splits=self.splits)

    def as_dict(self) -> dict[str, Any]:
        """The options as JSON-ready data (for manifests and the exports table)."""
        data = asdict(self)  # type: ignore[call-overload]
        data["splits"], data["datasets"] = list(self.splits), list(self.datasets)
        return data  # type: ignore[no-any-return]


@dataclass(frozen=True)
class SftOptions(_Common):
    """An SFT export: which rule (ablation), which layout, which examples, and the length limit."""

    kind: ClassVar[str] = "sft"
    ablation: str = "reflected"
    fmt: str = "inst"  # inst | messages
    splits: tuple[str, ...] = DEFAULT_SPLITS
    datasets: tuple[str, ...] = ()  # empty: every dataset
    shuffle_seed: int | None = None  # None: rows in example-id order
    include_bias: bool = False  # curated only: keep examples flagged for labeler bias
    use_relabels: bool = False  # curated only: train on the suggested label instead of gold
    reviewed_only: bool = False  # curated only: leave out examples still pending review
    # curated only: an example reviewers contest (no adjudication) is left out (unanimous), exported under the
    # decision most of them hold (majority) or the latest one (latest); db.curation
    policy: str = DEFAULT_POLICY
    max_tokens: int = DEFAULT_MAX_TOKENS
    tokenizer: str | None = None  # a local tokenizer folder; None: the conservative estimate
    # curated only: an edit changing more than this share of the words it replaced counts as `edit_large`
    # (exports.routing; --route small=R)
    route_small: float = DEFAULT_SMALL

    def __post_init__(self) -> None:
        _normalise(self)
        if self.ablation not in ABLATIONS:
            raise ExportOptionError(f"--ablation must be one of {', '.join(ABLATIONS)}, not {self.ablation!r}.")
        if self.fmt not in SFT_FORMATS:
            raise ExportOptionError(f"--format must be one of {', '.join(SFT_FORMATS)}, not {self.fmt!r}.")
        used = [f"--{name.replace('_', '-')}" for name in _CURATED_ONLY if getattr(self, name)]
        used += ["--policy"] if self.policy != DEFAULT_POLICY else []
        used += ["--route"] if self.route_small != DEFAULT_SMALL else []
        if used and self.ablation != "curated":
            raise ExportOptionError(f"{', '.join(used)}: only for review decisions; use with --ablation curated "
                                    f"(not {self.ablation}).")
        _check_common(self)


@dataclass(frozen=True)
class DpoOptions(_Common):
    """A DPO export: preference pairs from review decisions, which examples, and the length limit."""

    kind: ClassVar[str] = "dpo"
    splits: tuple[str, ...] = DEFAULT_SPLITS
    datasets: tuple[str, ...] = ()
    shuffle_seed: int | None = None
    include_bias: bool = False
    use_relabels: bool = False
    policy: str = DEFAULT_POLICY  # how an example reviewers contest is exported (as SftOptions.policy)
    max_tokens: int = DEFAULT_MAX_TOKENS
    tokenizer: str | None = None
    # an edit changing up to this share of the words it replaced gives no pair (small_edit; exports.routing)
    route_small: float = DEFAULT_SMALL

    def __post_init__(self) -> None:
        _normalise(self)
        _check_common(self)


ExportOptions = SftOptions | DpoOptions  # what an export selects: the one type its entry point takes
