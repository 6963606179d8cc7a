# tests/programs/script.sh — a bash workload: subshells, pipes, command
# substitution, arrays, associative arrays and string work; deterministic.
set -e
declare -A count
words=()
for i in $(seq 1 3000); do
    w="w$(( (i * 7919) % 997 ))"
    words+=("$w")
    count[$w]=$(( ${count[$w]:-0} + 1 ))
done
echo "distinct ${#count[@]} total ${#words[@]}"
printf '%s\n' "${words[@]}" | sort | uniq -c | sort -rn | head -5
for j in 1 2 3 4 5 6 7 8; do
    ( s=""; for k in $(seq 1 200); do s="$s$k,"; done; echo "sub $j ${#s}" ) &
done | sort
wait
x=$(for i in $(seq 1 500); do echo "line $i"; done | grep -c 7 | tr -d ' ')
echo "sevens $x"
long=""
for i in $(seq 1 2000); do long+="abc$i"; done
echo "long ${#long} $(echo "$long" | md5sum | cut -c1-16)"
echo "${long//abc/x}" | wc -c
