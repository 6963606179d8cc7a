/* A library the leak tests dlopen: a block kept only in its data. */
void *debug_lib_slot;

void debug_lib_keep(void *p)
{
    debug_lib_slot = p;
}
