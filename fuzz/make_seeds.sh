#!/bin/sh
# Seed corpora from the study's files in ../shared (third-party data: generated here, never
# committed). Run from the repository root after building the CLI:
#   cargo build && sh fuzz/make_seeds.sh
set -eu
models=../shared/models
bin=${CARGO_TARGET_DIR:-target}/debug/burstwatch
mkdir -p fuzz/corpus/tensor_bundle fuzz/corpus/model_loader fuzz/corpus/npy_reader fuzz/corpus/lab_config
le32() { n=$1; printf "$(printf '\\%03o\\%03o\\%03o\\%03o' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))"; }
for m in upbeat-snowflake-91 visionary-serenity; do
    idx=$models/$m/variables/variables.index
    data=$models/$m/variables/variables.data-00000-of-00001
    # tensor_bundle: u32 LE index length, the index, then the data shard: whole for upbeat
    # (so its object graph is in reach), cut for visionary (to stay small).
    if [ "$m" = upbeat-snowflake-91 ]; then keep=1000000; else keep=8192; fi
    { le32 "$(wc -c < "$idx")"; cat "$idx"; head -c "$keep" "$data"; } > fuzz/corpus/tensor_bundle/$m
    # model_loader mode 0: the imported .safetensors model.
    "$bin" import --keras "$models/$m" -o "fuzz/corpus/$m.safetensors" 2>/dev/null
    { printf '\000'; cat "fuzz/corpus/$m.safetensors"; } > fuzz/corpus/model_loader/$m.safetensors
    rm "fuzz/corpus/$m.safetensors"
    # mode 1: the whole saved_model.pb; mode 2: the model's Keras config (the root metadata).
    { printf '\001'; cat "$models/$m/saved_model.pb"; } > fuzz/corpus/model_loader/$m.pb
    { printf '\002'; strings -n 1000 "$models/$m/saved_model.pb" | grep -o '{"class_name": "Functional".*' | head -n 1; } > fuzz/corpus/model_loader/$m.json
done
# npy_reader: the study's series and frames (the frames cut to their first 64 KiB: a
# truncated file is a case too); lab_config: the example config and the tests' configs.
seed=../shared/data/seed
find "$seed" -name '*.npy' | head -n 20 | while read -r f; do
    head -c 65536 "$f" > "fuzz/corpus/npy_reader/$(echo "$f" | tr '/' '_')"
done
cp packaging/lab.example.toml fuzz/corpus/lab_config/
ls -l fuzz/corpus/*
