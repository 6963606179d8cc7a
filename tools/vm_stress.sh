#!/usr/bin/env bash
# tools/vm_stress.sh — the long stress of the address-space emulator: four
# threads faulting, mm_fork'ing, COW-writing and exiting mms under a
# 1500-frame limit with swap (every page swapped out and in again and
# again), one of them host-fork()ing now and then, every value read back
# checked, the swap counts checked at the end (tests/vm/test_fork_reclaim).
#   tools/vm_stress.sh BUILD_DIR [MINUTES]      (default 10 minutes)
set -euo pipefail
build=${1:?usage: tools/vm_stress.sh BUILD_DIR [MINUTES]}
minutes=${2:-10}
VM_STRESS_MS=$((minutes * 60 * 1000)) exec "$build/tests/vm_test_fork_reclaim"
