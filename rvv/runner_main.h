// The RVV runner's command line as a function, so tests can call it in-process under QEMU.
#ifndef SATTN_RVV_RUNNER_MAIN_H_
#define SATTN_RVV_RUNNER_MAIN_H_

namespace sattn {
namespace rvv {

// runner --problem FILE --result FILE [--dtype fp32|bf16|int8] [--plan-on-target]
//        [--check-selection] [--chunk-keys N] [--region attention|selection]
// runner --mode backward --problem FILE --forward FILE --upstream FILE --result FILE
//        --result-dk FILE --result-dv FILE [--dtype fp32|bf16] [--chunk-keys N]
// Exit codes: 0 ok, 1 bad input (file or arguments; the message names what), 2 usage.
int RunnerMain(int argc, char** argv);

}  // namespace rvv
}  // namespace sattn

#endif  // SATTN_RVV_RUNNER_MAIN_H_
