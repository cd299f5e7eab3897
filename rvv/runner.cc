#include "rvv/runner_main.h"

int main(int argc, char** argv) { return sattn::rvv::RunnerMain(argc, argv); }
