#!/usr/bin/env node
import "../dist/bin/outbox-relay.js"
