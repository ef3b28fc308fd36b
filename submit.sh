#!/usr/bin/env bash
# spark-submit wrapper for the image-feature job.
#
#   ./submit.sh [--env NAME] [--package] [spark-submit options] -- [job options]
#   ./submit.sh -- --input samples --output /tmp/out
#   ./submit.sh --master spark://host:7077 --env standalone -- --input /shared/imgs --output /shared/out
#   ./submit.sh --master yarn --deploy-mode cluster --env yarn --package -- --input hdfs:///imgs --output hdfs:///out
#
# Before "--": spark-submit options (default --master local[*]); --env NAME loads
# conf/spark-NAME.properties (default: the --master's: local, yarn, kubernetes, standalone,
# else cluster). After "--": the job's options (--help).
# The project's code (udfs/, spark_jobs/) always travels as a zip (--py-files). Executors run
# PYSPARK_PYTHON (default: this machine's Python, below), which must exist on every node with
# the dependencies installed -- or, with --package, a venv-pack'ed environment of the
# dependencies (build/env.tar.gz, rebuilt when pyproject.toml changes; --repack forces it) is
# shipped with --archives and executors run ./environment/bin/python (IMAGE_ETL_PACKAGE=1
# does the same as --package, IMAGE_ETL_ENV=NAME as --env NAME). See docs/cluster.md.
# submit.sh itself and a client-mode driver run this machine's Python: PYSPARK_DRIVER_PYTHON,
# else PYSPARK_PYTHON if it runs here, else this checkout's .venv python, else python3.
# spark-submit is $SPARK_HOME's, else that Python's pyspark's.
# submit.sh also takes spark-submit's own form, "[options] spark_jobs/image_features.py [job
# options]", so that a scheduler can call it in place of spark-submit.
set -euo pipefail

here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"  # also when called through a symlink
env_name="${IMAGE_ETL_ENV:-}"  # none given: the profile of the --master's cluster manager
master=""
deploy_mode="client"
package="${IMAGE_ETL_PACKAGE:+yes}"  # for callers that cannot add options (Airflow's operator)
submit_args=()
declare -A extra=()  # the user's --files, --py-files, --archives
die() { local code="$1"; shift; echo "submit.sh: $*" >&2; exit "$code"; }  # codes as the job's
value() { [[ $# -ge 2 ]] || die 2 "$1 needs a value"; }
# The job's options that spark-submit does not share: given before "--", spark-submit would
# stop with its whole usage text (exit 1, which a scheduler retries).
job_options=" --demo --input --output --incremental --compact --allow-empty-input --glob --run-id --max-side
  --max-pixels --max-file-bytes --keep-gps --read-mode --spark-read-max-bytes --retry-errors
  --max-error-rate --time-budget --keep-run-records --stale-lock-after --task-bytes
  --partitions --log-level "
while [[ $# -gt 0 ]]; do
  case "$1" in
    --) shift; break ;;
    --env) value "$@"; env_name="$2"; shift 2 ;;
    --env=*) env_name="${1#--env=}"; shift ;;
    --master) value "$@"; master="$2"; shift 2 ;;
    --master=*) master="${1#--master=}"; shift ;;
    --deploy-mode) value "$@"; deploy_mode="$2"; shift 2 ;;
    --deploy-mode=*) deploy_mode="${1#--deploy-mode=}"; shift ;;
    # spark-submit keeps the last of each: the user's are merged with submit.sh's below
    --files|--py-files|--archives) value "$@"; extra["$1"]="${extra[$1]:+${extra[$1]},}$2"; shift 2 ;;
    --files=*|--py-files=*|--archives=*) k="${1%%=*}"; extra["$k"]="${extra[$k]:+${extra[$k]},}${1#*=}"; shift ;;
    --package) package="${package:-yes}"; shift ;;
    --repack) package="force"; shift ;;
    -h|--help) sed -n '2,/^[^#]/{/^#/{s/^# \{0,1\}//;p;}}' "$0"; exit 0 ;;
    # spark-submit's own form, as schedulers call it (Airflow's SparkSubmitOperator with
    # spark_binary=submit.sh): [options] .../image_features.py [job options]
    */image_features.py|image_features.py) shift; break ;;
    *) [[ "$job_options" != *[[:space:]]"${1%%=*}"[[:space:]]* ]] \
         || die 2 "$1 is the job's option: put it after '--' (./submit.sh [spark-submit options] -- $1 ...)"
       submit_args+=("$1"); shift ;;
  esac
done
master="${master:-local[*]}"
if [[ -z "$env_name" ]]; then
  case "$master" in
    local*) env_name=local ;;
    yarn) env_name=yarn ;;
    k8s://*) env_name=kubernetes ;;
    spark://*) env_name=standalone ;;
    *) env_name=cluster ;;
  esac
  [[ "$env_name" == local ]] || echo "submit.sh: --env $env_name (from --master $master)" >&2
fi

# This machine's Python, for submit.sh's own work and a client-mode driver: PYSPARK_PYTHON
# may name one that exists only on the nodes (a cluster install), so it is used here only if
# it runs here. Executors run PYSPARK_PYTHON, by default this same Python.
local_python="${PYSPARK_DRIVER_PYTHON:-}"
if [[ -z "$local_python" ]]; then
  if [[ -n "${PYSPARK_PYTHON:-}" ]] && command -v "$PYSPARK_PYTHON" >/dev/null 2>&1; then local_python="$PYSPARK_PYTHON"
  elif [[ -x "$here/.venv/bin/python" ]]; then local_python="$here/.venv/bin/python"
  else local_python="$(command -v python3)" || die 1 "no Python here: set PYSPARK_DRIVER_PYTHON"; fi
fi
if [[ "$deploy_mode" == cluster && -z "$package" && -z "${PYSPARK_PYTHON:-}" ]]; then
  # the driver and executors run on the nodes: this machine's Python path means nothing there
  die 2 "cluster deploy mode runs the driver on a node: set PYSPARK_PYTHON to the Python the nodes have (with the dependencies), or add --package to ship one"
fi
python="${PYSPARK_PYTHON:-$local_python}"
driver_python="$local_python"
[[ "$deploy_mode" == cluster ]] && driver_python="$python"  # the driver runs on a node
export PYSPARK_PYTHON="$python" PYSPARK_DRIVER_PYTHON="$driver_python"

if ! command -v java >/dev/null 2>&1 && [[ -z "${JAVA_HOME:-}" ]]; then
  die 1 "Java 17+ is required by Spark and none was found (install a JDK or set JAVA_HOME)"
fi

spark_submit="${SPARK_HOME:+$SPARK_HOME/bin/spark-submit}"
if [[ -z "$spark_submit" ]]; then
  # from the checkout: python -c puts the working directory first on its path, where a stray
  # pyspark.py (or timeit.py, ...) would be imported instead
  spark_submit="$(cd "$here" && "$local_python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit"))' 2>/dev/null)" \
    || die 1 "no spark-submit: set SPARK_HOME to a Spark install, or install pyspark in $local_python (or set PYSPARK_DRIVER_PYTHON to a Python that has it)"
fi

props="$here/conf/spark-$env_name.properties"
[[ -f "$props" ]] || die 2 "no $props (choose --env from conf/spark-*.properties)"
# The value Spark will take for a property, where submit.sh must add to it: the caller's
# --conf, else the profile's, else the cluster's spark-defaults.conf (which --properties-file
# overrides key by key).
spark_defaults="${SPARK_CONF_DIR:-$(dirname "$(dirname "$spark_submit")")/conf}/spark-defaults.conf"
property_in() {  # KEY FILE: the last value of KEY in a Java properties file
  [[ -f "$2" ]] || return 0
  sed -n "s/^[[:space:]]*${1//./\\.}[[:space:]]*[=:[:space:]][[:space:]]*//p" "$2" | tail -1
}
setting() {  # KEY
  local a given="" next=""
  for a in "${submit_args[@]}"; do
    [[ -n "$next" && "$a" == "$1="* ]] && given="${a#"$1="}"
    [[ "$a" == "--conf=$1="* ]] && given="${a#"--conf=$1="}"
    next=""; [[ "$a" == --conf || "$a" == -c ]] && next=yes
  done
  [[ -n "$given" ]] || given="$(property_in "$1" "$props")"
  [[ -n "$given" ]] || given="$(property_in "$1" "$spark_defaults")"
  printf '%s' "$given"
}

case "$deploy_mode" in client|cluster) ;; *) die 2 "--deploy-mode is client or cluster, not '$deploy_mode'" ;; esac
if [[ "$deploy_mode" == cluster && "$master" == spark://* ]]; then
  # spark-submit itself refuses this ("Cluster deploy mode is currently not supported for
  # python applications on standalone clusters"); say so before starting a JVM.
  die 2 "Spark standalone cannot run a Python application in cluster deploy mode: use client mode (the default) with a spark:// master, or YARN / Kubernetes for a driver inside the cluster"
fi
if [[ " $* " == *" --demo "* && "$master" != local* ]]; then
  # the samples and ./output/demo are this machine's files
  [[ "$deploy_mode" == client ]] \
    || die 2 "--demo runs on this checkout's samples/, which a driver on a node does not have: use client mode, or give --input and --output instead"
  echo "submit.sh: --demo reads $here/samples and writes ./output/demo on this machine: executors on other machines cannot reach them (give --input and --output on shared storage)" >&2
fi
if [[ -n "$package" && "$master" == local* ]]; then
  die 2 "--package ships an environment to cluster executors; local mode runs $python directly"
fi

# Pre-flight: a spark:// master nobody listens at would otherwise cost ~60 s of registration
# retries (3 x 20 s, not configurable) before spark-submit gives up.
if [[ "$master" == spark://* ]]; then
  reachable=""
  IFS=',' read -ra hostports <<<"${master#spark://}"
  for hp in "${hostports[@]}"; do
    host="${hp%:*}"; port="${hp##*:}"; [[ "$port" == "$hp" ]] && port=7077
    if timeout 5 bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then reachable="$hp"; break; fi
  done
  [[ -n "$reachable" ]] || die 1 "no Spark master is listening at $master (TCP connect failed): start the cluster or fix --master"
fi

# Event log for the history server: a local directory must exist before the driver writes to
# it (here, in client mode).
event_dir="$(setting spark.eventLog.dir)"
if [[ "$deploy_mode" == client && "$(setting spark.eventLog.enabled)" == true
      && ( "$event_dir" == file:* || "$event_dir" == /* ) ]]; then
  dir="${event_dir#file:}"; dir="/${dir##/}"  # file:/x, file:///x and /x alike
  mkdir -p "$dir" 2>/dev/null || echo "submit.sh: cannot create the event log directory $dir" >&2
fi

# What submit.sh builds (the code's zip, the packed environment): in the checkout, else (a
# checkout deployed read-only, run by another user) in the user's cache; IMAGE_ETL_BUILD_DIR wins.
build="${IMAGE_ETL_BUILD_DIR:-$here/build}"
if [[ -z "${IMAGE_ETL_BUILD_DIR:-}" ]] && ! { mkdir -p "$build" && [[ -w "$build" ]]; } 2>/dev/null; then
  build="${XDG_CACHE_HOME:-$HOME/.cache}/spark-image-etl/build"
fi
mkdir -p "$build" || die 1 "cannot create $build for the code's zip (set IMAGE_ETL_BUILD_DIR)"

# The project's code as one zip for the driver's and executors' PYTHONPATH (cheap: always rebuilt).
# Written aside and renamed: other submissions from this checkout may be reading the last one.
zip_file="$build/spark_image_etl.zip"
(cd "$here" && "$local_python" - "$zip_file" <<'PY'
import os, sys, zipfile, pathlib
tmp = f"{sys.argv[1]}.{os.getpid()}.tmp"
with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
    for pkg in ("udfs", "spark_jobs"):
        for f in sorted(pathlib.Path(pkg).rglob("*.py")):
            z.write(f)
os.replace(tmp, sys.argv[1])
PY
)

python_conf=(--conf "spark.pyspark.python=$python")
if [[ -n "$package" ]]; then
  # The dependencies (pyproject.toml's, without pyspark: the cluster's Spark provides it) in a
  # venv packed by venv-pack, at the versions the driver's Python has (so features match).
  archive="$build/env.tar.gz"
  if [[ "$package" == force || ! -s "$archive" || "$here/pyproject.toml" -nt "$archive" ]]; then
    (cd "$here" && "$local_python" -c 'import venv_pack') 2>/dev/null \
      || die 1 "--package needs venv-pack in $local_python (pip install venv-pack, or pip install -e '.[pack]')"
    echo "submit.sh: packing the dependencies into $archive ..." >&2
    venv="$build/pack-venv.$$"
    rm -rf "$venv"
    "$local_python" -m venv --without-pip "$venv"
    "$local_python" -m pip freeze --exclude-editable | grep -vi '^spark-image-etl' >"$venv.constraints"
    mapfile -t deps < <("$local_python" - "$here/pyproject.toml" <<'PY'
import sys
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
for dep in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]:
    if not dep.lower().startswith("pyspark"):
        print(dep)
PY
)
    "$local_python" -m pip --python "$venv/bin/python" install -q -c "$venv.constraints" "${deps[@]}"
    # bin/python links to this machine's base interpreter: nodes need the same one at the same
    # path, or set IMAGE_ETL_PYTHON_PREFIX to where the nodes have it (venv-pack --python-prefix).
    base="$(cd "$here" && "$local_python" -c 'import sys; print(sys.base_prefix)')"
    if [[ -z "${IMAGE_ETL_PYTHON_PREFIX:-}" && -n "${HOME:-}" && "$base/" == "$HOME/"* ]]; then
      echo "submit.sh: the packed environment runs $base/bin/python, under $HOME: nodes rarely have it (set IMAGE_ETL_PYTHON_PREFIX to where they have this Python version, then --repack)" >&2
    fi
    "$local_python" -m venv_pack -p "$venv" -o "$venv.tar.gz" -q \
      ${IMAGE_ETL_PYTHON_PREFIX:+--python-prefix "$IMAGE_ETL_PYTHON_PREFIX"}
    mv -f "$venv.tar.gz" "$archive"
    rm -rf "$venv" "$venv.constraints"
    echo "submit.sh: $(du -h "$archive" | cut -f1) $archive" >&2
  fi
  extra[--archives]="$archive#environment${extra[--archives]:+,${extra[--archives]}}"
  python_conf=(--conf "spark.pyspark.python=./environment/bin/python")
fi
if [[ "$deploy_mode" == client ]]; then
  # The driver runs here: spark.pyspark.python would otherwise apply to it too.
  python_conf+=(--conf "spark.pyspark.driver.python=$local_python")
  # Spark's own logging down to errors on the driver, unless the caller set driver options;
  # added to the JVM options Spark would otherwise take (--driver-java-options replaces them).
  if [[ " ${submit_args[*]-} " != *" --driver-java-options "* ]]; then
    given_opts="$(setting spark.driver.extraJavaOptions)"
    # The JVM class-data archive of this Java and Spark, once built (README "Faster start-up"):
    # the driver's JVM starts ~3 s sooner. Nothing when there is none.
    archive_opt="$(cd "$here" && "$local_python" -m spark_jobs.class_archive option 2>/dev/null || true)"
    # Spark splits this string on whitespace but honours quotes and backslashes: %q keeps a
    # checkout path with a space one option (class_archive quotes its own).
    log4j_opt="$(printf %q "-Dlog4j2.configurationFile=file:$here/conf/log4j2.properties")"
    python_conf+=(--driver-java-options "${given_opts:+$given_opts }$log4j_opt${archive_opt:+ $archive_opt}")
  fi
fi

export IMAGE_ETL_CONF_DIR="${IMAGE_ETL_CONF_DIR:-$here/conf}"
export IMAGE_ETL_SAMPLES_DIR="${IMAGE_ETL_SAMPLES_DIR:-$here/samples}"  # for --demo
# --load-spark-defaults: the cluster's own spark-defaults.conf (connectors, spark.yarn.jars)
# still applies under --properties-file, which wins over it.
submit=("$spark_submit"
  --master "$master"
  --deploy-mode "$deploy_mode"
  --properties-file "$props"
  --load-spark-defaults
  --py-files "$zip_file${extra[--py-files]:+,${extra[--py-files]}}"
  --files "$here/conf/job.properties${extra[--files]:+,${extra[--files]}}"
  ${extra[--archives]:+--archives "${extra[--archives]}"}
  "${python_conf[@]}"
  "${submit_args[@]}"
  "$here/spark_jobs/image_features.py" "$@")
[[ "$deploy_mode" == client ]] || exec "${submit[@]}"

# Client mode: the job's driver is a child of spark-submit's JVM. A scheduler stops a run with
# SIGTERM; sent to the JVM, its shutdown hook stops the SparkContext under the driver, which
# then cannot close its run record or release the output's lock. So SIGTERM goes to the
# driver, which stops in order (jobs cancelled, record closed, lock released; exit 143) and
# the JVM ends with it. Ctrl-C reaches the driver from the terminal itself (the JVM, started
# in the background, ignores it): submit.sh only waits for the two to finish.
"${submit[@]}" &
jvm=$!
trap : INT
forward_term() {
  local driver
  driver="$(pgrep -P "$jvm" -f 'spark_jobs/image_features[.]py' 2>/dev/null | head -1 || true)"
  kill -TERM "${driver:-$jvm}" 2>/dev/null || true
}
trap forward_term TERM
while :; do
  status=0
  wait "$jvm" || status=$?
  kill -0 "$jvm" 2>/dev/null || break  # a wait cut short by the trap: the JVM runs on
done
exit "$status"
