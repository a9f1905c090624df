"""genes: gene names mapped to Entrez ids per second (index build timed separately)."""

from dygenept.data.symbols import SymbolIndex
from dygenept.stages.genes import map_universe

from _common import ORG_DB, ROOT, parse_args, report, require, timed

args = parse_args(__doc__)
require(ORG_DB)
index, build_seconds = timed(
    SymbolIndex.from_db, ORG_DB, ROOT / "resources" / "previous_symbols.tsv"
)
names = sorted({r.symbol for r in index.records.values()})[: 2_000 if args.quick else None]
names += sorted(index.by_alias)[: len(names) // 2]  # aliases too, some ambiguous
table, seconds = timed(map_universe, names, index, {}, "warn", "benchmark", repeat=3)
report(
    "genes",
    len(names) / seconds,
    "names/s",
    f"{len(names):,} symbols and aliases, {len(table):,} mapped",
    f"index build: {build_seconds:.1f} s",
)
