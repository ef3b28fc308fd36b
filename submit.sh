#!/usr/bin/env bash
# spark-submit wrapper for the image-feature job.
#
#   ./submit.sh [--env NAME] [spark-submit options] -- [job options]
#   ./submit.sh -- --input samples --output /tmp/out
#   ./submit.sh --master spark://host:7077 --env cluster -- --input s3a://b/imgs --output s3a://b/out
#
# Before "--": spark-submit options (default --master local[*]); --env NAME loads
# conf/spark-NAME.properties (default: local). After "--": the job's options (--help).
# Ships udfs/ and spark_jobs/ to the executors as a zip (--py-files) and points
# PYSPARK_PYTHON at this project's interpreter (override with PYSPARK_PYTHON).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
env_name="${IMAGE_ETL_ENV:-local}"
master=""
submit_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --) shift; break ;;
    --env) env_name="$2"; shift 2 ;;
    --env=*) env_name="${1#--env=}"; shift ;;
    --master) master="$2"; shift 2 ;;
    --master=*) master="${1#--master=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) submit_args+=("$1"); shift ;;
  esac
done

python="${PYSPARK_PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x "$here/.venv/bin/python" ]]; then python="$here/.venv/bin/python"; else python="$(command -v python3)"; fi
fi
export PYSPARK_PYTHON="$python"
export PYSPARK_DRIVER_PYTHON="${PYSPARK_DRIVER_PYTHON:-$python}"

if ! command -v java >/dev/null 2>&1 && [[ -z "${JAVA_HOME:-}" ]]; then
  echo "submit.sh: Java 17+ is required by Spark and none was found (install a JDK or set JAVA_HOME)" >&2
  exit 1
fi

spark_submit="${SPARK_HOME:+$SPARK_HOME/bin/spark-submit}"
if [[ -z "$spark_submit" ]]; then
  spark_submit="$("$python" -c 'import os, pyspark; print(os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit"))')"
fi

props="$here/conf/spark-$env_name.properties"
[[ -f "$props" ]] || { echo "submit.sh: no $props (choose --env from conf/spark-*.properties)" >&2; exit 2; }

# The project's code as one zip for the executors' PYTHONPATH (rebuilt every time: cheap).
build="$here/build"
mkdir -p "$build"
zip_file="$build/spark_image_etl.zip"
rm -f "$zip_file"
(cd "$here" && "$python" - "$zip_file" <<'PY'
import sys, zipfile, pathlib
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as z:
    for pkg in ("udfs", "spark_jobs"):
        for f in sorted(pathlib.Path(pkg).rglob("*.py")):
            z.write(f)
PY
)

export IMAGE_ETL_CONF_DIR="${IMAGE_ETL_CONF_DIR:-$here/conf}"
exec "$spark_submit" \
  --master "${master:-local[*]}" \
  --properties-file "$props" \
  --py-files "$zip_file" \
  --files "$here/conf/job.properties" \
  --conf "spark.pyspark.python=$PYSPARK_PYTHON" \
  "${submit_args[@]}" \
  "$here/spark_jobs/image_features.py" "$@"
