#!/usr/bin/env bash
# Fuzzes the H.248 decoder (control/h248/fuzz) for the given number of seconds (default 1800),
# seeded with megaco's message corpus read from the installed Erlang examples.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP lets the stable toolchain provide them.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-1800}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
CORPUS=control/h248/fuzz/corpus/h248_decode
mkdir -p "$CORPUS"
MSGS=$(ls /usr/lib/erlang/lib/megaco-*/examples/meas/time_test.msgs | tail -1)
# One file per corpus message, via Erlang's own reader.
erl -noshell -eval "
  {ok, [{pretty, Msgs}]} = file:consult(\"$MSGS\"),
  lists:foreach(fun({N, B}) -> file:write_file(\"$CORPUS/\" ++ atom_to_list(N), B) end, Msgs),
  halt()."
cd control/h248/fuzz
RUSTC_BOOTSTRAP=1 cargo fuzz run h248_decode corpus/h248_decode -- \
  -max_total_time="$SECONDS_TO_RUN" -max_len=4096 -print_final_stats=1
