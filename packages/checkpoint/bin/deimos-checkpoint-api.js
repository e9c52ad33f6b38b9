#!/usr/bin/env node
import "../dist/bin/checkpoint-api.js"
