#include "ktest.h"
int main(void){return 0;}
