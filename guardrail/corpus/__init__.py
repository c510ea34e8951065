"""Third-party IP corpora and near-duplicate detection.

text.py (tokens, shingles) -> minhash.py (windowed MinHash, datasketch-compatible) ->
segment.py / index.py (memory-mapped LSH segments, atomic publication) -> align.py /
detect.py (exact verification, passages) ; registry.py (database), service.py (process-wide
access, file reading), cli.py, routes.py. The scanner is guardrail/scanners/ip.py.
"""
