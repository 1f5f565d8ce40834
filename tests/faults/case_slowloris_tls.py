#!/usr/bin/env python3
"""Slowloris on the TLS control port (auto-TLS): 600 connections from one source each send
a TLS record header and then one byte a second, reopened as soon as the server closes
them. The bounds and checks are those of case_slowloris_plain.py, over TLS."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl
import slowloris

fl.main("slowloris_tls", lambda c: slowloris.run(c, tls=True))
