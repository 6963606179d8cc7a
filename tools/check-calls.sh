#!/usr/bin/env bash
# Fails when a call goes up a layer (the map: tools/layers.txt): no object
# file of a layer may use a symbol that only a layer not below it defines
# (a higher one, or one beside it: vm/mm and interpose).  Also fails when
# an object outside the homes of host calls (vm/frames/os.c, lib/host.c)
# makes one of the host calls listed below, but for the files named there
# with their reason.
# Usage: tools/check-calls.sh BUILD_DIR
set -euo pipefail
build=${1:?usage: $0 BUILD_DIR}
objs="$build/CMakeFiles"
# Each layer, where its objects are, the layers it may use.
declare -A objdir=() below=() above=()
order=()
while read -r layer dir uses; do
    order+=("$layer")
    objdir[$layer]=$dir
    below[$layer]=" ${uses//-/} "
done < <(grep -Ev '^[[:space:]]*(#|$)' "$(dirname "$0")/layers.txt")
# The layers it may not use: every other layer not below it.
for layer in "${order[@]}"; do
    for other in "${order[@]}"; do
        [[ $other = "$layer" || ${below[$layer]} = *" $other "* ]] ||
            above[$layer]+="$other "
    done
done
# A layer's definitions, less the libc functions it interposes (vmmode's
# read, write, mmap ...): a call of those below is a call of libc's.
libc=$(${CC:-cc} -print-file-name=libc.so.6)
libc_defs=$(nm -D --defined-only "$libc" 2>/dev/null |
            awk '{ sub(/@.*/, "", $3); print $3 }' | sort -u)
defs() { nm --defined-only "$objs/${objdir[$1]}"/*.o 2>/dev/null |
         awk 'NF == 3 && $2 ~ /[TDBRW]/ { print $3 }' | sort -u |
         comm -23 - <(echo "$libc_defs"); }
status=0
for layer in "${order[@]}"; do
    ls "$objs/${objdir[$layer]}"/*.o >/dev/null 2>&1 || continue
    for o in "$objs/${objdir[$layer]}"/*.o; do
        undef=$(nm -u "$o" | awk '{ print $2 }' | sort -u)
        for up in ${above[$layer]:-}; do
            bad=$(comm -12 <(echo "$undef") <(defs "$up") | tr '\n' ' ')
            if [ -n "$bad" ]; then
                echo "$layer/$(basename "$o" .o): calls up into $up: $bad"
                status=1
            fi
        done
    done
done
[ $status = 0 ] && echo "kslab: calls go down only"

# Host calls: the system calls kslab makes through libc.  Their homes are
# vm/frames/os.c and lib/host.c; the others that make some, and why.
host_calls='sched_yield fopen fopen64 fdopen fstat fstat64 write read open
  open64 close mmap mmap64 munmap madvise mprotect mremap getrlimit fcntl
  fcntl64 clock_gettime nanosleep usleep syscall sigaction pthread_sigmask
  sigprocmask readlink ftruncate ftruncate64 pread pread64 pwrite pwrite64
  memfd_create fallocate fallocate64 lseek lseek64 dup dup2 ioctl tgkill kill
  raise getpid gettid opendir readdir readdir64'
# file -> the host calls it may make ("*": all) | why
declare -A host_ok=(
    [vm/frames/os]='*|the home of host calls'
    [lib/host]='*|the host calls of lib/ (below vm/frames)'
    [vm/mm/fault]='*|the SIGSEGV handler: raw async-signal-safe calls'
    [vm/mm/filemap]='*|I/O on the file a user mapped'
    [vm/mm/swapfile]='*|I/O on the swap file a user gave'
    [vm/mm/mmap]='*|checks of the file a user maps'
    [vm/mm/vma]='*|the reference to the file a vma maps'
    [vmmode/init]='*|libkslab-vm.so: the libc calls it interposes'
    [vmmode/io]='*|libkslab-vm.so: the libc calls it interposes'
    [vmmode/mman]='*|libkslab-vm.so: the libc calls it interposes'
    [vmmode/stats]='*|libkslab-vm.so: the statistics files a user asked for'
    [slab/leaks]='open close|the report file a user named (KSLAB_LEAKS_LOG)'
)
hstatus=0
for o in $(find "$objs" -path '*kslab_*_objs.dir/*' -name '*.c.o' | sort); do
    rel=${o#*_objs.dir/}
    rel=${rel%.c.o}
    ok=${host_ok[$rel]:-|}
    ok=${ok%%|*}
    [ "$ok" = '*' ] && continue
    bad=$(nm -u "$o" | awk '{ sub(/@.*/, "", $2); print $2 }' | sort -u |
          comm -12 - <(tr -s ' \n' '\n' <<<"$host_calls" | sort -u) |
          comm -23 - <(tr -s ' ' '\n' <<<"$ok" | sort -u) | tr '\n' ' ')
    if [ -n "${bad// /}" ]; then
        echo "$rel: host calls outside vm/frames/os.c and lib/host.c: $bad"
        hstatus=1
    fi
done
[ $hstatus = 0 ] && echo "kslab: host calls from their homes only"
[ $hstatus = 0 ] || status=1
exit $status
