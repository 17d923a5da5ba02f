// The qat subcommands: each takes the arguments after its name and returns
// the exit code (0, 1 for errors, 2 for usage).
#ifndef QAT_EXAMPLES_CLI_COMMANDS_H_
#define QAT_EXAMPLES_CLI_COMMANDS_H_

namespace qat_cli {

int RunCommand(int argc, char** argv);        // run_command.cc
int EvalCommand(int argc, char** argv);       // eval_command.cc
int CalibrateCommand(int argc, char** argv);  // quantization_commands.cc
int QuantizeCommand(int argc, char** argv);   // quantization_commands.cc
int PrepareCommand(int argc, char** argv);    // training_commands.cc
int TrainCommand(int argc, char** argv);      // training_commands.cc
int GradCommand(int argc, char** argv);       // training_commands.cc
int ExportCommand(int argc, char** argv);     // training_commands.cc
int PipelineCommand(int argc, char** argv);   // pipeline_command.cc
int ZooCommand(int argc, char** argv);        // training_commands.cc
int DecomposeCommand(int argc, char** argv);  // decompose_command.cc
int SensitivityCommand(int argc, char** argv);  // sensitivity_command.cc

}  // namespace qat_cli

#endif  // QAT_EXAMPLES_CLI_COMMANDS_H_
