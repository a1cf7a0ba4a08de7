%% Decodes every file in a directory with Erlang/OTP megaco's text decoders and prints one
%% line per file: "OK <file>" or "FAIL <file> <reason>". Files ending in .pretty go to the
%% pretty decoder, .compact to the compact one. Used by the Rust tests as a second opinion
%% on imsagw's H.248 encoder.
-module(megaco_check).
-export([run/1]).

run([Dir]) ->
    {ok, Files} = file:list_dir(Dir),
    lists:foreach(fun(F) -> check(Dir, F) end, lists:sort(Files)),
    halt(0).

check(Dir, F) ->
    Mod = case filename:extension(F) of
              ".pretty" -> megaco_pretty_text_encoder;
              ".compact" -> megaco_compact_text_encoder;
              _ -> skip
          end,
    case Mod of
        skip -> ok;
        _ ->
            {ok, Bin} = file:read_file(filename:join(Dir, F)),
            case catch Mod:decode_message([], dynamic, Bin) of
                {ok, _} -> io:format("OK ~s~n", [F]);
                Other -> io:format("FAIL ~s ~0p~n", [F, Other])
            end
    end.
