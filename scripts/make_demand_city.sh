#!/usr/bin/env bash
# Regenerate the built-in synthetic demand city, src/urbanflow/datasets/synthetic-demand/,
# with the shipped commands only: seeded synthetic trips, counted per H3 cell and 15 minutes.
# The same options give the same bytes (see docs/datasets.md, "synthetic-demand").
#
#   scripts/make_demand_city.sh            # uses .venv/bin/urbanflow
#   URBANFLOW=urbanflow scripts/make_demand_city.sh
set -euo pipefail
cd "$(dirname "$0")/.."
URBANFLOW=${URBANFLOW:-.venv/bin/urbanflow}
DEST=src/urbanflow/datasets/synthetic-demand

SYNTH="datasets synth trips --seed 7 --zones 60 --days 28 --trips-per-day 6000"
SYNTH="$SYNTH --start 2026-03-02 --timezone Europe/Berlin"
FLOWS="datasets from-trips --zones h3:7 --frequency 15min --timezone Europe/Berlin"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086  # the option strings are meant to split into words
"$URBANFLOW" $SYNTH --out "$work/trips.parquet"
# shellcheck disable=SC2086
"$URBANFLOW" $FLOWS "$work/trips.parquet" --out "$work/flows"

mkdir -p "$DEST"
cp "$work/flows/departures/readings.parquet" "$work/flows/departures/sensors.csv" \
    "$work/flows/departures/edges.csv" "$work/flows/od.parquet" "$DEST/"
# from-trips sets kernel_sigma_m to the mean distance between neighbouring zones: keep it
sigma=$(grep '^kernel_sigma_m' "$work/flows/departures/dataset.toml")
cat >"$DEST/dataset.toml" <<EOF
# SYNTHETIC: a fictional city's taxi/bike-share style demand, not measured anywhere.
# Trips drawn by \`urbanflow $SYNTH\`
# (commute peaks, quieter weekends, rain days, gravity-model destinations; zones scattered
# around 51.05 N, 10.45 E, no real place modelled), counted by
# \`urbanflow $FLOWS\`:
# departures per H3 cell (resolution 7, about 5 km²) and 15 minutes, plus od.parquet
# (origin_zone, destination_zone, hour_of_week, trips). Regenerate: scripts/make_demand_city.sh
name = "synthetic-demand"
quantity = "departures"
unit = "trips"
kind = "count"
frequency = "15min"
timezone = "Europe/Berlin"
source = "synthetic: urbanflow $SYNTH | urbanflow $FLOWS (scripts/make_demand_city.sh)"
licence = "synthetic data made by urbanflow's own generator; Apache-2.0 like the code"
$sigma
EOF
echo "Wrote $DEST ($(du -cb "$DEST"/* | tail -1 | cut -f1) bytes)"
