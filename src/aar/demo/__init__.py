"""The end-to-end demo's data: a small corpus of real recordings taken from Debian packages.

``build_corpus(DIR)`` fetches the packages (``apt-get download``, unpacked into a cache, or
read in place when installed), cuts their recordings into one-second 24 kHz clips of three
classes (speech, music, environment) and writes ``DIR/manifest.csv`` with provenance,
licence and a train/held-out split; ``load_manifest(DIR)`` reads it back.
"""

from aar.demo.corpus import ClipRecord, CorpusSummary, DemoCorpusError, build_corpus, load_manifest

__all__ = ["ClipRecord", "CorpusSummary", "DemoCorpusError", "build_corpus", "load_manifest"]
