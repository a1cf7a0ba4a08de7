%% Times Erlang/OTP megaco's pretty-text decoder on the message corpus: every message decoded
%% Rounds times, best of Reps repetitions, with the plain Erlang scanner and with megaco's
%% flex scanner driver. Prints one line per configuration:
%%   megaco <config> msgs_per_sec=<float> bytes_per_sec=<float>
-module(megaco_bench).
-export([run/1]).

run([File, RoundsS, RepsS]) ->
    Rounds = list_to_integer(RoundsS),
    Reps = list_to_integer(RepsS),
    {ok, [{pretty, Msgs}]} = file:consult(File),
    Bins = [B || {_, B} <- Msgs],
    Bytes = lists:sum([byte_size(B) || B <- Bins]),
    Flex = case catch megaco_flex_scanner:start() of
               {ok, Port} -> [{flex, Port}];
               {ok, Port, _} -> [{flex, Port}];
               _ -> none
           end,
    Configs = [{plain, []}] ++ case Flex of none -> []; F -> [{flex, F}] end,
    lists:foreach(
      fun({Name, Conf}) ->
              [{ok, _} = megaco_pretty_text_encoder:decode_message(Conf, dynamic, B) || B <- Bins],
              Best = lists:min([time_rounds(Conf, Bins, Rounds) || _ <- lists:seq(1, Reps)]),
              N = Rounds * length(Bins),
              io:format("megaco ~s msgs_per_sec=~.1f bytes_per_sec=~.1f~n",
                        [Name, N / (Best / 1.0e6), Rounds * Bytes / (Best / 1.0e6)])
      end, Configs),
    halt(0).

time_rounds(Conf, Bins, Rounds) ->
    {T, _} = timer:tc(fun() -> loop(Conf, Bins, Rounds) end),
    T.

loop(_, _, 0) -> ok;
loop(Conf, Bins, N) ->
    [megaco_pretty_text_encoder:decode_message(Conf, dynamic, B) || B <- Bins],
    loop(Conf, Bins, N - 1).
