#!/usr/bin/env bash
# deploy/batch/parse_folder.sh: parse a large folder of photos with `m2fp parse`, spread over the cores
# of this machine or of several machines by GNU parallel (Debian package `parallel`); no scheduler of
# our own. docs/SCALING.md explains it; deploy/test_batch.py runs it.
#
#   parse_folder.sh --model FILE --in DIR --out DIR [--sshlogin LOGINS] [--jobs N] [--batch N]
#                   [--threads N] [--joblog FILE] [--bin m2fp] [-- more m2fp parse options]
#
#   --sshlogin  GNU parallel's list: ':' = this machine, 'host1,2/host2' = 1 job slot on host1 ... (ssh,
#               keys set up). Remote machines need m2fp and the same paths: --model, --in and --out on a
#               shared file system (NFS, ...) mounted at the same place everywhere.
#   --jobs      jobs at once per machine (default 1; each runs --threads engine threads)
#   --batch     photos per `m2fp parse` run (default 16): the model is loaded once per run (seconds)
#   --threads   engine threads per job (default: all cores of the machine / --jobs)
#   --joblog    parallel's record of every batch (default OUT/joblog.tsv; one per concurrent run)
#
# Output: OUT/<photo name>/result.json, labels.png, ... (m2fp parse), and the joblog. Photos that already have OUT/<name>/result.json are skipped, so running it
# again after a failure or an interruption parses only what is missing. Photo names (without the
# extension) must be unique across the folder: OUT/<name> would collide; duplicates are refused.
# Exit status: 0 all parsed; 1 some photos failed (named on stderr, from m2fp parse's messages);
# 2 usage.
set -euo pipefail

MODEL="" IN="" OUT="" SSHLOGIN=":" JOBS=1 BATCH=16 THREADS="" JOBLOG="" BIN=${M2FP_BIN:-m2fp}
EXTRA=()
usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --model) MODEL=$2; shift 2 ;;
    --in) IN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --sshlogin) SSHLOGIN=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --joblog) JOBLOG=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    -h | --help) usage ;;
    *) echo "parse_folder: unknown option '$1'" >&2; usage ;;
  esac
done
[ -n "$MODEL" ] && [ -n "$IN" ] && [ -n "$OUT" ] || { echo "parse_folder: --model, --in and --out are required" >&2; usage; }
command -v parallel >/dev/null || { echo "parse_folder: GNU parallel is not installed (apt-get install parallel)" >&2; exit 2; }
[ -d "$IN" ] || { echo "parse_folder: --in $IN is not a folder" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "parse_folder: --model $MODEL: no such file" >&2; exit 2; }
case "$JOBS$BATCH" in *[!0-9]*) echo "parse_folder: --jobs and --batch take numbers" >&2; exit 2 ;; esac
if [ -z "$THREADS" ]; then THREADS=$(( $(nproc) / JOBS )); [ "$THREADS" -ge 1 ] || THREADS=1; fi
mkdir -p "$OUT"
# Absolute paths: the jobs may run elsewhere (same shared mount points) or in another folder.
MODEL=$(realpath "$MODEL"); IN=$(realpath "$IN"); OUT=$(realpath "$OUT")
case "$BIN" in */*) BIN=$(realpath "$BIN") ;; esac
JOBLOG=${JOBLOG:-$OUT/joblog.tsv}

LIST=$(mktemp)
trap 'rm -f "$LIST" "$LIST.todo"' EXIT
find -L "$IN" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' -o -iname '*.bmp' \) -print0 | sort -z > "$LIST"
total=$(tr -cd '\0' < "$LIST" | wc -c)
dups=$(tr '\0' '\n' < "$LIST" | sed 's|.*/||; s|\.[^.]*$||' | sort | uniq -d | head -5)
if [ -n "$dups" ]; then
  echo "parse_folder: photo names must be unique (OUT/<name> would collide); for example: $(echo $dups)" >&2
  exit 2
fi
# What is left to do: no OUT/<name>/result.json yet.
while IFS= read -r -d '' f; do
  name=${f##*/}; name=${name%.*}
  [ -f "$OUT/$name/result.json" ] || printf '%s\0' "$f"
done < "$LIST" > "$LIST.todo"
todo=$(tr -cd '\0' < "$LIST.todo" | wc -c)
echo "parse_folder: $total photos in $IN, $((total - todo)) already parsed, $todo to parse on '$SSHLOGIN'" \
     "($JOBS job(s) per machine x $THREADS threads, $BATCH photos per run)"
[ "$todo" -gt 0 ] || exit 0

# One `m2fp parse` per batch of photos. --halt never: a bad photo fails its batch (m2fp parse still
# parses the others and exits 1), the other batches go on; joblog.tsv says which batches failed.
status=0
parallel --will-cite -0 --halt never --jobs "$JOBS" --sshlogin "$SSHLOGIN" -n "$BATCH" \
  --joblog "$JOBLOG" --tag --line-buffer \
  env OMP_NUM_THREADS="$THREADS" "$BIN" parse --model "$MODEL" --out "$OUT" --threads "$THREADS" \
  "${EXTRA[@]}" {} < "$LIST.todo" || status=$?

# Count from the outputs, not from the exit codes: what exists is what was parsed.
missing=()
while IFS= read -r -d '' f; do
  name=${f##*/}; name=${name%.*}
  [ -f "$OUT/$name/result.json" ] || missing+=("$f")
done < "$LIST.todo"
echo "parse_folder: parsed $((todo - ${#missing[@]})) of $todo; $JOBLOG has every batch (parallel exit $status)"
if [ ${#missing[@]} -gt 0 ]; then
  echo "parse_folder: ${#missing[@]} photo(s) not parsed (see the messages above; run again to retry only these):" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 1
fi
exit 0
