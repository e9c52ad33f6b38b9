#!/usr/bin/env node
import "../dist/bin/console.js"
