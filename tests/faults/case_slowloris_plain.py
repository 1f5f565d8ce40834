#!/usr/bin/env python3
"""Slowloris on the plain control port: 600 connections from one source each trickle an
unfinished upgrade request (one byte a second), reopened as soon as the server closes
them. Connections from another source still get /healthz within 2 s and a new tunnel client
connects within 6 s; the tunnel's transfer under way completes byte-exact; afterwards the
server's descriptors and memory are back (within the slack) once the handshake timeout has
closed what the attack left."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl
import slowloris

fl.main("slowloris_plain", lambda c: slowloris.run(c, tls=False))
