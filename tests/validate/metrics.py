"""Parses a Prometheus exposition (OpenMetrics text) with the reference
parser of prometheus_client and prints every sample as JSON:
{"name{label=value,...}": value}. Exit 1 when it does not parse."""
import json
import sys
from pathlib import Path

from prometheus_client.openmetrics.parser import text_string_to_metric_families

text = Path(sys.argv[1]).read_text()
samples = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
