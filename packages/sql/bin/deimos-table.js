#!/usr/bin/env node
import "../dist/bin/table-codegen.js"
